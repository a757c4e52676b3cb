#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing (as root; apt-get update
# only when a package is not found in the current lists).
set -euo pipefail
packages=(coreutils docker-registry apache2-utils openssl tar runc busybox-static zstd mount util-linux skopeo containerd etcd-server chromium strace)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test/install-deps.sh: missing packages ${missing[*]}; run as root or install them" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
