// The control plane's contract: map layouts agree with the object's BTF, bad input is refused
// with ipvsadm's words, and a refused call changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Balancer } from '../lib/balancer.js';
import { BpfObject } from '../lib/libbpf.js';
import { ALL_CODECS, layoutMismatches } from '../lib/layout.js';
import { packageRoot } from '../lib/native.js';

const VIP = '10.0.0.100';
const svc = { protocol: 'tcp' as const, address: VIP, port: 80 };

describe('map layouts', () => {
  it('every codec matches the struct of the same name in the object\'s BTF', () => {
    const obj = BpfObject.open(join(packageRoot(), 'build', 'bpf', 'xvs.bpf.o'));
    try {
      expect(layoutMismatches((name) => obj.btfStruct(name))).toEqual([]);
      // and the check is not vacuous: a codec that disagrees is reported
      const wrong = (name: string) => {
        const s = obj.btfStruct(name);
        return s && name === ALL_CODECS[0]!.cName ? { ...s, size: s.size + 4 } : s;
      };
      expect(layoutMismatches(wrong)).toHaveLength(1);
    } finally {
      obj.close();
    }
  });
});

describe('validation', () => {
  let lb: Balancer;
  beforeAll(() => {
    lb = Balancer.open({ maxConnections: 1024 });
    lb.addService(svc, { scheduler: 'rr' });
    lb.addRealServer(svc, { address: '10.1.0.1' }, { weight: 2 });
  });
  afterAll(() => lb?.close());

  const snapshot = () => JSON.stringify(lb.list(), (_k, v) => (typeof v === 'bigint' ? String(v) : v));

  const cases: [string, (lb: Balancer) => void, string][] = [
    ['duplicate service', (b) => b.addService(svc, { scheduler: 'rr' }), 'Service already exists'],
    ['unknown scheduler', (b) => b.addService({ ...svc, port: 81 }, { scheduler: 'nope' }), 'Scheduler not found: nope'],
    ['malformed VIP', (b) => b.addService({ ...svc, address: '10.0.0.300' }), 'illegal virtual server address: 10.0.0.300'],
    ['port out of range', (b) => b.addService({ ...svc, port: 65536 }), 'illegal virtual server port: 65536'],
    ['unknown protocol', (b) => b.addService({ ...svc, protocol: 'icmp' as 'tcp' }), 'unknown protocol icmp: use tcp, udp or sctp'],
    ['edit of a missing service', (b) => b.editService({ ...svc, port: 82 }, { scheduler: 'wrr' }), 'No such service'],
    ['delete of a missing service', (b) => b.deleteService({ ...svc, port: 82 }), 'No such service'],
    ['real server for a missing service', (b) => b.addRealServer({ ...svc, port: 82 }, { address: '10.1.0.2' }), 'Service not defined'],
    ['duplicate real server', (b) => b.addRealServer(svc, { address: '10.1.0.1' }), 'Destination already exists'],
    ['weight above 2147483647', (b) => b.addRealServer(svc, { address: '10.1.0.2' }, { weight: 2147483648 }), 'illegal weight specified'],
    ['negative weight', (b) => b.editRealServer(svc, { address: '10.1.0.1' }, { weight: -1 }), 'illegal weight specified'],
    ['fractional weight', (b) => b.addRealServer(svc, { address: '10.1.0.2' }, { weight: 1.5 }), 'illegal weight specified'],
    ['malformed real address', (b) => b.addRealServer(svc, { address: '10.1.0' }), 'illegal real server address: 10.1.0'],
    ['unknown method', (b) => b.addRealServer(svc, { address: '10.1.0.2' }, { method: 'x' as 'dr' }), 'unknown forwarding method x'],
    ['port mapping with DR', (b) => b.addRealServer(svc, { address: '10.1.0.2', port: 8080 }), 'port mapping (real port ≠ virtual port) needs masquerading (nat)'],
    ['edit of a missing real', (b) => b.editRealServer(svc, { address: '10.1.0.9' }, { weight: 3 }), 'No such destination'],
    ['delete of a missing real', (b) => b.deleteRealServer(svc, { address: '10.1.0.9' }), 'No such destination'],
    ['family mismatch', (b) => b.addRealServer(svc, { address: 'fd00::1' }), 'real server and virtual service of different address families need tunnelling (tun)'],
    ['attach to a missing interface', (b) => b.attach('xvs-nope0'), 'no such interface: xvs-nope0'],
  ];
  it.each(cases)('%s: refused, nothing changed', (_name, call, message) => {
    const before = snapshot();
    expect(() => call(lb)).toThrow(message);
    expect(snapshot()).toBe(before);
  });

  it('timeouts: --set semantics (0 leaves a value unchanged), bad values refused', () => {
    expect(lb.timeouts()).toEqual({ tcp: 900, tcpfin: 120, udp: 300 });
    lb.setTimeouts({ tcp: 60, tcpfin: 0, udp: 30 });
    expect(lb.timeouts()).toEqual({ tcp: 60, tcpfin: 120, udp: 30 });
    expect(() => lb.setTimeouts({ tcp: -5 })).toThrow('invalid tcp timeout: -5');
    expect(lb.timeouts()).toEqual({ tcp: 60, tcpfin: 120, udp: 30 });
  });
});
