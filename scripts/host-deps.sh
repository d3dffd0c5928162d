#!/usr/bin/env bash
# Install the Debian 12 host packages the lab and its tests need.
# Idempotent: when every package is already installed, apt is not touched.
# Versions are not pinned: the host follows Debian 12 (bookworm) point
# releases, and the registry serves only the current version of each package.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

PKGS=(
  # libvirtd + virtlogd + virsh; -sysv instead of -systemd so apt does not
  # pull systemd-sysv onto a host whose PID 1 is not systemd.
  libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon
  libvirt-daemon-driver-qemu libvirt-clients
  # qemu-system-x86 depends on seabios + ipxe-qemu (virtio-net option ROM).
  qemu-system-x86 qemu-utils
  genisoimage     # mkisofs: pulumi-libvirt builds the cidata ISO with it
  xsltproc        # pulumi-libvirt applies domain XSLT (console log) with it
  dnsmasq-base    # libvirt networks (DHCP/DNS)
  iptables        # libvirt NAT/route networks program it
  iproute2        # ip netns
  mmdebstrap      # builds the guest root tree
  e2fsprogs       # mkfs.ext4 -d turns the tree into a disk image
  openssh-client  # ssh into lab VMs from the namespace
  openssh-server  # scripts/hosts.sh: each simulated libvirt host runs its own sshd
  tcpdump nftables conntrack  # labctl: ESP on the wire, fragment drop, redial drill
  procps          # pkill: a capture asks tcpdump for its counts (labctl/host.held_capture)
  util-linux      # unshare, used by in-root.sh
  patch           # toolchain.sh patches go-libvirt (toolchain/libvirt-provider)
  debian-archive-keyring  # mmdebstrap verifies the bookworm archive
  # scripts/build-kernel.sh: the lab's own guest kernel (ESP in TCP)
  make gcc bc bison flex cpio xz-utils libelf-dev libssl-dev
  ca-certificates
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  lab_log "all ${#PKGS[@]} host packages already installed ($((SECONDS - t0))s)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { lab_log "need root to install: ${missing[*]}"; exit 1; }
lab_log "missing: ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
# apt-get update only when some missing package has no install candidate
# (fresh machine without lists, or lists too old to know the package).
need_update=0
for p in "${missing[@]}"; do
  cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then need_update=1; break; fi
done
if [ $need_update -eq 1 ]; then
  t=$SECONDS; lab_log "apt-get update"
  apt-get update -q >&2
  lab_log "apt-get update done ($((SECONDS - t))s)"
fi

# PID 1 is not systemd: postinst scripts would try to start libvirtd etc. on
# the host (outside the lab namespace).  policy-rc.d exit 101 = "don't start".
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1
fi
cleanup() { if [ $own_policy -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

t=$SECONDS; lab_log "apt-get install ${#missing[@]} packages"
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
lab_log "apt-get install done ($((SECONDS - t))s)"

# Sanity: the commands the other scripts call.
for c in libvirtd virtlogd virsh qemu-system-x86_64 qemu-img mkisofs xsltproc dnsmasq \
         iptables ip mmdebstrap mkfs.ext4 ssh ssh-keygen sshd unshare patch; do
  command -v "$c" >/dev/null || { lab_log "missing command after install: $c"; exit 1; }
done
lab_log "host dependencies ready ($((SECONDS - t0))s total)"
