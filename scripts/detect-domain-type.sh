#!/usr/bin/env bash
# Print the libvirt domain type the lab VMs should use: "kvm" or "qemu".
#
# /dev/kvm existing is not enough: on these machines (nested, Firecracker)
# a Debian kernel under -enable-kvm hangs without printing a line.  So boot
# the lab's own kernel + initrd ($CACHE/image, scripts/build-image.sh) under
# KVM and answer "kvm" only if it reaches the initramfs within
# $LAB_KVM_PROBE_TIMEOUT seconds; the same probe under TCG confirms that
# "qemu" works.  The reason goes to stderr, the answer to stdout.
#
# Cached in $CACHE/domain-type, keyed on host kernel, lab kernel and qemu
# versions.  LAB_DOMAIN_TYPE=kvm|qemu overrides; --force re-probes.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

if [ -n "${LAB_DOMAIN_TYPE:-}" ]; then
  case "$LAB_DOMAIN_TYPE" in kvm|qemu) ;; *) lab_log "LAB_DOMAIN_TYPE must be kvm or qemu"; exit 2 ;; esac
  lab_log "LAB_DOMAIN_TYPE=$LAB_DOMAIN_TYPE set: not probing"
  echo "$LAB_DOMAIN_TYPE"; exit 0
fi

CACHE=$LAB_CACHE
IMG=$CACHE/image
CACHED=$CACHE/domain-type
TIMEOUT=${LAB_KVM_PROBE_TIMEOUT:-30}
force=0
[ "${1:-}" = "--force" ] && force=1

[ -f "$IMG/vmlinuz" ] && [ -f "$IMG/initrd.img" ] \
  || { lab_log "no $IMG/vmlinuz or initrd.img: run scripts/build-image.sh first"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { lab_log "qemu-system-x86_64 missing: run scripts/host-deps.sh"; exit 1; }

key="host=$(uname -r) guest=$(cat "$IMG/kernel-version" 2>/dev/null || md5sum < "$IMG/vmlinuz" | cut -c1-12) $(qemu-system-x86_64 --version | head -1)"
if [ $force -eq 0 ] && [ -f "$CACHED" ] && [ "$(sed -n 2p "$CACHED")" = "$key" ]; then
  answer=$(sed -n 1p "$CACHED")
  lab_log "cached: $answer ($(sed -n 3p "$CACHED"))"
  echo "$answer"; exit 0
fi

workdir=$(mktemp -d)
qpid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

# probe ACCEL: boot kernel+initrd, succeed when the serial log shows the
# initramfs starting.  Default CPU model, like a libvirt domain without <cpu>.
probe() {
  local accel=$1 logf=$workdir/$1.log start=$SECONDS
  : > "$logf"
  qemu-system-x86_64 -accel "$accel" -m 512 -smp 1 \
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
    -append 'console=ttyS0 panic=-1' -no-reboot \
    -display none -monitor none -nic none -serial "file:$logf" \
    2> "$workdir/$accel.err" &
  qpid=$!
  while [ $((SECONDS - start)) -lt "$TIMEOUT" ]; do
    if grep -qE 'Run /init as init process|Loading, please wait' "$logf"; then
      probe_secs=$((SECONDS - start))
      kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=
      return 0
    fi
    if ! kill -0 "$qpid" 2>/dev/null; then
      wait "$qpid" 2>/dev/null || true; qpid=
      probe_why="qemu exited early: $(tail -2 "$workdir/$accel.err" | tr '\n' ' ')"
      return 1
    fi
    sleep 1
  done
  kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=
  if [ -s "$logf" ]; then
    probe_why="no initramfs after ${TIMEOUT}s (last: $(tail -c 200 "$logf" | tr -d '\r' | tail -1))"
  else
    probe_why="no console output at all in ${TIMEOUT}s (guest hangs under $accel)"
  fi
  return 1
}

answer=qemu
if [ ! -e /dev/kvm ]; then
  reason="/dev/kvm does not exist"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  reason="/dev/kvm is not read/writable by $(id -un)"
else
  lab_log "probing KVM: booting the lab kernel with -accel kvm (up to ${TIMEOUT}s)"
  if probe kvm; then
    answer=kvm; reason="lab kernel reached the initramfs under KVM in ${probe_secs}s"
  else
    reason="/dev/kvm exists but KVM is unusable: $probe_why"
  fi
fi
if [ "$answer" = qemu ]; then
  lab_log "probing TCG (software emulation)"
  if probe tcg; then
    reason="$reason; TCG reached the initramfs in ${probe_secs}s"
  else
    lab_log "TCG failed too: $probe_why"
    lab_log "the lab kernel does not boot at all: check scripts/build-image.sh output"
    exit 1
  fi
fi

mkdir -p "$CACHE"
printf '%s\n%s\n%s\n' "$answer" "$key" "$reason" > "$CACHED"
lab_log "$answer: $reason ($((SECONDS - t0))s)"
echo "$answer"
