#!/bin/sh
# Records test/fixtures/sip-callid-linux61.json: what Linux 6.1's ip_vs_pe_sip makes of 70 SIP
# payloads, in a user-mode Linux guest (Debian's user-mode-linux package). As root, from the
# repository: sh scripts/uml-sip/record.sh
set -e
D=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$D/../../test/fixtures/sip-callid-linux61.json}
mkdir -p /lib/modules && ln -sfn /usr/lib/uml/modules/6.1.176 /lib/modules/6.1.176
python3 "$D/corpus.py" /tmp/sip-corpus.json
cat > /tmp/sip-guest.sh <<GUEST
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t tmpfs tmpfs /run
modprobe ip_vs; modprobe ip_vs_rr; modprobe ip_vs_pe_sip; modprobe veth
sysctl -qw net.ipv4.ip_forward=1
ip link set lo up; ip netns add c; ip netns add s
ip link add vc type veth peer name eth0 netns c; ip link add vs type veth peer name eth0 netns s
ip addr add 10.1.0.1/16 dev vc; ip addr add 10.1.0.100/16 dev vc; ip link set vc up
ip addr add 10.2.0.1/24 dev vs; ip link set vs up
ip -n c link set eth0 up; for i in \$(seq 1 80); do ip -n c addr add 10.1.1.\$i/16 dev eth0; done
ip -n c route add default via 10.1.0.1
ip -n s addr add 10.2.0.11/24 dev eth0; ip -n s link set eth0 up; ip -n s route add default via 10.2.0.1
ipvsadm -A -u 10.1.0.100:5060 -s rr -p 600 --pe sip
ipvsadm -a -u 10.1.0.100:5060 -r 10.2.0.11 -m
python3 $D/drive.py /tmp/sip-corpus.json $OUT.new
poweroff -f
GUEST
chmod +x /tmp/sip-guest.sh
linux.uml mem=1G root=/dev/root rootfstype=hostfs rootflags=/ rw init=/tmp/sip-guest.sh con0=null,fd:1 con=null >/dev/null 2>&1
mv "$OUT.new" "$OUT"
