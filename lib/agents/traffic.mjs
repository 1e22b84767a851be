#!/usr/bin/env node
// Traffic agent for the demo, the tests and the benchmarks; run inside a namespace with
// `ip netns exec NS node lib/agents/traffic.mjs ROLE ...`. Plain JavaScript (node built-ins only)
// so it runs without a build step. lib/traffic.ts wraps it with types.
//
//   serve --name NAME [--tcp PORT]... [--udp PORT]... [--bind ADDR]
//     TCP: writes "NAME\n" on every connection, then echoes what it receives until the client
//     closes. UDP: answers every datagram with "NAME\n". Prints "ready" once every socket listens.
//     TCP listens on :: (dual stack) unless --bind is given: accepted sockets answer from the
//     address the client reached, so a VIP on lo (direct routing) and the real's own address
//     (NAT) both work. UDP cannot pick its reply source on a wildcard socket, so without --bind it
//     binds each address the namespace has at start-up: configure addresses (and VIPs) first.
//
//   connect --tcp|--udp HOST:PORT [--count N] [--concurrency C] [--timeout MS]
//     Makes N connections (TCP) or sends N datagrams from N sockets, hence N source ports (UDP),
//     reads the server name each time, and prints one JSON line:
//       {"answers": {"NAME": count, ...}, "failures": n, "errors": ["distinct messages", ...]}
//     A UDP answer from another address than HOST counts as a failure.
//
//   session --tcp|--udp HOST:PORT [--count N] [--timeout MS]
//     Holds N connections (TCP) or N sockets (UDP) open, to prove that established flows survive
//     a reconfiguration. Prints {"names": [NAME or null, ...], "failures": n, "errors": [...]}
//     once all are set up, then reads commands on stdin, one per line:
//       check  sends a fresh token on every live connection and prints
//              {"held": [{"name": NAME|null, "echoOk": bool, "error"?: message}, ...]};
//              TCP: the token must come back on the same connection (so from the same server);
//              UDP: the answer must come from the same server name, to the same socket.
//       close  (or end of stdin) closes everything and exits.
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

const MAX_ERRORS = 5;

function fail(message) {
  process.stderr.write(`traffic.mjs: ${message}\n`);
  process.exit(2);
}

function parse(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      tcp: { type: 'string', multiple: true },
      udp: { type: 'string', multiple: true },
      bind: { type: 'string' },
      count: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '16' },
      timeout: { type: 'string', default: '2000' },
    },
  });
  return { role: positionals[0], values };
}

function integer(text, what) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) fail(`${what} must be a non-negative integer, got "${text}"`);
  return value;
}

/** Parses HOST:PORT or [V6HOST]:PORT. */
function parseTarget(text) {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!match) fail(`target must be HOST:PORT or [HOST]:PORT, got "${text}"`);
  return { host: match[1], port: integer(match[2], 'port') };
}

/** The single --tcp or --udp target of the client roles. */
function clientTarget(values) {
  const tcp = values.tcp ?? [];
  const udp = values.udp ?? [];
  if (tcp.length + udp.length !== 1) fail('give exactly one --tcp or --udp HOST:PORT');
  return tcp.length === 1 ? { proto: 'tcp', ...parseTarget(tcp[0]) } : { proto: 'udp', ...parseTarget(udp[0]) };
}

/** Canonical text of an IP address, so that answers can be compared with the target. */
function canonicalIp(address) {
  const bare = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  return net.isIPv6(bare) ? new URL(`http://[${bare}]/`).hostname.slice(1, -1) : bare;
}

function firstLine(buffer) {
  const end = buffer.indexOf('\n');
  return end < 0 ? undefined : buffer.slice(0, end);
}

function errorCollector() {
  const messages = new Set();
  return {
    add(err) {
      if (messages.size < MAX_ERRORS) messages.add(err instanceof Error ? err.message : String(err));
    },
    list: () => [...messages],
  };
}

function printJson(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// ---- serve ----

function listenTcp(name, port, host) {
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: false }, resolve);
  });
}

function listenUdp(name, port, address) {
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  socket.on('message', (_msg, rinfo) => socket.send(`${name}\n`, rinfo.port, rinfo.address));
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address }, resolve);
  });
}

/** Addresses the namespace holds, except link-local IPv6 ones (they need a scope to bind). */
function localAddresses() {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((info) => !(info.family === 'IPv6' && info.address.startsWith('fe80:')))
    .map((info) => info.address);
}

async function serve(values) {
  const name = values.name ?? fail('serve needs --name NAME');
  const tcpPorts = (values.tcp ?? []).map((p) => integer(p, '--tcp port'));
  const udpPorts = (values.udp ?? []).map((p) => integer(p, '--udp port'));
  if (tcpPorts.length + udpPorts.length === 0) fail('serve needs at least one --tcp or --udp port');
  const udpAddresses = values.bind !== undefined ? [values.bind] : localAddresses();
  await Promise.all([
    ...tcpPorts.map((port) => listenTcp(name, port, values.bind ?? '::')),
    ...udpPorts.flatMap((port) => udpAddresses.map((address) => listenUdp(name, port, address))),
  ]);
  process.stdout.write('ready\n');
}

// ---- clients ----

/** Opens a TCP connection and resolves with it and the server name once the name has arrived. */
function openTcp({ host, port }, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`tcp ${host}:${port}: no server name within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk) => {
      received += chunk;
      const name = firstLine(received);
      if (name === undefined) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ socket, name, rest: received.slice(name.length + 1) });
    };
    socket.on('data', onData);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      reject(new Error(`tcp ${host}:${port}: closed before the server name arrived`));
    });
  });
}

/** Closes a TCP connection gracefully (FIN both ways), or resets it after the timeout. */
function closeTcp(socket, timeoutMs) {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
    socket.end();
  });
}

function udpSocket(host) {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  socket.on('error', () => {});
  return socket;
}

/** Sends one datagram from `socket` and resolves with the first line of the answer. */
function askUdp(socket, { host, port }, timeoutMs) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg, rinfo) => {
      finish();
      if (canonicalIp(rinfo.address) !== canonicalIp(host)) {
        reject(new Error(`udp ${host}:${port}: answer came from ${rinfo.address}`));
      } else {
        resolve(firstLine(msg.toString('utf8')) ?? msg.toString('utf8'));
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`udp ${host}:${port}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      socket.off('message', onMessage);
    };
    socket.on('message', onMessage);
    socket.send('xvs\n', port, host, (err) => {
      if (err) {
        finish();
        reject(err);
      }
    });
  });
}

async function tcpOnce(target, timeoutMs) {
  const { socket, name } = await openTcp(target, timeoutMs);
  await closeTcp(socket, timeoutMs);
  return name;
}

async function udpOnce(target, timeoutMs) {
  const socket = udpSocket(target.host);
  try {
    return await askUdp(socket, target, timeoutMs);
  } finally {
    socket.close();
  }
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
async function pool(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
}

async function connect(values) {
  const target = clientTarget(values);
  const count = integer(values.count, '--count');
  const timeoutMs = integer(values.timeout, '--timeout');
  const once = target.proto === 'tcp' ? tcpOnce : udpOnce;
  const answers = {};
  const errors = errorCollector();
  let failures = 0;
  await pool(count, integer(values.concurrency, '--concurrency'), async () => {
    try {
      const name = await once(target, timeoutMs);
      answers[name] = (answers[name] ?? 0) + 1;
    } catch (err) {
      failures++;
      errors.add(err);
    }
  });
  printJson({ answers, failures, errors: errors.list() });
}

// ---- session ----

/** A held TCP connection: the token must come back on the very same connection. */
async function tcpHeld(target, timeoutMs) {
  const { socket, name, rest } = await openTcp(target, timeoutMs);
  let received = rest;
  let broken;
  socket.on('data', (chunk) => (received += chunk));
  socket.on('error', (err) => (broken = err));
  socket.on('close', () => (broken ??= new Error('connection closed')));
  let round = 0;
  return {
    name,
    check(index) {
      if (broken) return Promise.resolve({ echoOk: false, error: broken.message });
      const token = `check-${index}-${round++}\n`;
      received = '';
      socket.write(token);
      return new Promise((resolve) => {
        const started = Date.now();
        const poll = () => {
          if (received.includes(token)) return resolve({ echoOk: true });
          if (broken) return resolve({ echoOk: false, error: broken.message });
          if (Date.now() - started > timeoutMs) {
            return resolve({ echoOk: false, error: `no echo within ${timeoutMs} ms` });
          }
          setTimeout(poll, 5);
        };
        poll();
      });
    },
    close: () => closeTcp(socket, timeoutMs),
  };
}

/** A held UDP socket: later answers, to the same source port, must name the same server. */
async function udpHeld(target, timeoutMs) {
  const socket = udpSocket(target.host);
  try {
    const name = await askUdp(socket, target, timeoutMs);
    return {
      name,
      async check() {
        try {
          const now = await askUdp(socket, target, timeoutMs);
          return now === name ? { echoOk: true } : { echoOk: false, error: `answered by ${now}` };
        } catch (err) {
          return { echoOk: false, error: err.message };
        }
      },
      close: async () => socket.close(),
    };
  } catch (err) {
    socket.close();
    throw err;
  }
}

async function session(values) {
  const target = clientTarget(values);
  const count = integer(values.count, '--count');
  const timeoutMs = integer(values.timeout, '--timeout');
  const hold = target.proto === 'tcp' ? tcpHeld : udpHeld;
  const errors = errorCollector();
  const held = await Promise.all(
    Array.from({ length: count }, () =>
      hold(target, timeoutMs).catch((err) => {
        errors.add(err);
        return undefined;
      }),
    ),
  );
  const failures = held.filter((h) => h === undefined).length;
  printJson({ names: held.map((h) => h?.name ?? null), failures, errors: errors.list() });

  for await (const line of readline.createInterface({ input: process.stdin })) {
    const command = line.trim();
    if (command === 'close') break;
    if (command !== 'check') {
      process.stderr.write(`traffic.mjs: unknown session command "${command}"\n`);
      continue;
    }
    const results = await Promise.all(
      held.map(async (h, i) =>
        h === undefined
          ? { name: null, echoOk: false, error: 'never connected' }
          : { name: h.name, ...(await h.check(i)) },
      ),
    );
    printJson({ held: results });
  }
  await Promise.all(held.map((h) => h?.close()));
}

// ---- main ----

const roles = { serve, connect, session };
const { role, values } = parse(process.argv.slice(2));
const main = roles[role] ?? (() => fail(`role must be one of ${Object.keys(roles).join(', ')}, got "${role}"`));
main(values).then(
  () => {
    // A server keeps running on its sockets; a client is done, whatever sockets linger.
    if (role !== 'serve') process.exit(0);
  },
  (err) => fail(err instanceof Error ? err.message : String(err)),
);
