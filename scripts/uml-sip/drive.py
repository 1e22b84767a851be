# Inside the guest: sends every payload from its own client address, then reads which Call-ID
# each template got from /proc/net/ip_vs_conn.
import json, subprocess, sys, time
cases = json.load(open(sys.argv[1]))
for i, c in enumerate(cases):
    subprocess.run(['ip', 'netns', 'exec', 'c', 'python3', '-c',
      f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.1.1.{i+1}',5060));s.sendto(bytes.fromhex('{c['payload']}'),('10.1.0.100',5060))"], check=True)
time.sleep(0.5)
raw = open('/proc/net/ip_vs_conn', 'rb').read()
tpl, conns = {}, set()
for line in raw.split(b'\n')[1:]:
    if not line: continue
    f = line.split(None, 9)
    ip = int(f[1], 16)
    idx = (ip & 0xff) - 1
    if f[2] == b'0000':
        tpl[idx] = f[9].split(b' ', 1)[1].hex() if len(f) > 9 else None
    else:
        conns.add(idx)
for i, c in enumerate(cases):
    c['accepted'] = i in conns
    c['callid'] = tpl.get(i)
json.dump([{'name': c['name'], 'payload': c['payload'], 'callid': c['callid'] if c['accepted'] else None} for c in cases], open(sys.argv[2], 'w'), indent=1)
