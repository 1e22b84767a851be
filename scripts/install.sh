#!/usr/bin/env bash
# Installs what xvs needs on a fresh Debian/Ubuntu machine (as root), then the npm packages, which
# builds the native addon and the BPF objects. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < scripts/debian-packages.txt
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "xvs: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# bpf_fib_lookup, pinning and XDP need bpffs; most systems mount it already.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# `ip netns exec` hides /sys/fs/bpf behind a fresh /sys: xvs reaches it there through this bind
# mount, which every xvs command in the host's mount namespace also makes (lib/nstable.ts).
mkdir -p /run/xvs/bpffs
mountpoint -q /run/xvs/bpffs || mount --bind /sys/fs/bpf /run/xvs/bpffs

npm ci --no-audit --no-fund
