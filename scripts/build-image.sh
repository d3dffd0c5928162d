#!/usr/bin/env bash
# build-image.sh [--suite SUITE]: turn a Debian tree (scripts/debian-root.sh;
# Debian 12 at $CACHE/rootfs by default, --suite trixie: Debian 13 at
# $CACHE/rootfs-trixie) into a disk for direct kernel boot, in $CACHE/image
# ($CACHE/image-trixie for trixie):
#   debianN-lab.qcow2  whole-disk ext4 (no partition table, label rootfs),
#                      base for linked clones (N: the tree's Debian release)
#   vmlinuz            kernel
#   initrd.img         initramfs (checked: virtio_blk, ext4, the seed CD-ROM's ata_piix and sr_mod)
#   cmdline            kernel command line
# and print the kernel command line on stdout. The image also holds the module
# index of the lab's own kernel (scripts/build-kernel.sh, run first), so that it
# boots that kernel too: `modprobe openvswitch` must find the module built in.
#
# No loop devices: mkfs.ext4 -d fills the file system from the tree.  The
# image is rebuilt only when the rootfs (its stamp) or this script changed.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

CACHE=$LAB_CACHE
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=${2:?--suite needs a Debian suite name}; shift 2; fi
[ $# -eq 0 ] || { echo "usage: $0 [--suite SUITE]" >&2; exit 2; }
ROOT=$(lab_suite_dir rootfs "$SUITE")
OUT=$(lab_suite_dir image "$SUITE")
SIZE=${LAB_IMAGE_SIZE:-3G}   # virtual size; the qcow2 only holds used blocks
LABEL=rootfs
CMDLINE="root=/dev/vda rw console=ttyS0 no_timer_check"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")

[ -f "$ROOT.stamp" ] && [ -x "$ROOT/bin/sh" ] \
  || { lab_log "no rootfs at $ROOT: run scripts/debian-root.sh --suite $SUITE first"; exit 1; }
IMAGE=debian$(cut -d. -f1 "$ROOT/etc/debian_version")-lab.qcow2

KERNEL=$LAB_CACHE/kernel
[ -f "$KERNEL/stamp" ] || { lab_log "no lab kernel at $KERNEL: run scripts/build-kernel.sh first"; exit 1; }
inputs_hash=$( { cat "$ROOT.stamp" "$SCRIPT_PATH" "$KERNEL/stamp"; echo "$SIZE"; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$inputs_hash" ] \
   && [ -f "$OUT/$IMAGE" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
  lab_log "image up to date: $OUT/$IMAGE ($((SECONDS - t0))s)"
  echo "$CMDLINE"
  exit 0
fi
for c in mkfs.ext4 qemu-img e2fsck; do
  command -v "$c" >/dev/null || { lab_log "missing $c: run scripts/host-deps.sh"; exit 1; }
done

# Exactly one kernel in the tree: the image and the files next to it agree.
kernels=("$ROOT"/boot/vmlinuz-*)
[ ${#kernels[@]} -eq 1 ] && [ -f "${kernels[0]}" ] || { lab_log "expected one kernel in $ROOT/boot, got: ${kernels[*]}"; exit 1; }
kver=${kernels[0]##*/vmlinuz-}
[ -f "$ROOT/boot/initrd.img-$kver" ] || { lab_log "no initrd for $kver"; exit 1; }

# The initramfs must be able to mount /dev/vda as ext4: virtio_blk (+ PCI
# transport) as a module in the initrd or built in; same for ext4. And the
# seed's IDE CD-ROM drivers (debian-root.sh says why).
t=$SECONDS
initrd_list=$("$HERE/in-root.sh" --suite "$SUITE" lsinitramfs "/boot/initrd.img-$kver")
for m in virtio_blk:VIRTIO_BLK virtio_pci:VIRTIO_PCI ext4:EXT4_FS ata_piix:ATA_PIIX sr_mod:BLK_DEV_SR; do
  mod=${m%%:*} cfg=${m##*:}
  if grep -q "^CONFIG_$cfg=y" "$ROOT/boot/config-$kver"; then
    lab_log "initrd check: $mod built into the kernel"
  elif grep -q "/$mod\.ko" <<< "$initrd_list"; then
    lab_log "initrd check: $mod.ko in the initrd"
  else
    lab_log "initrd check FAILED: $mod neither built in nor in the initrd"; exit 1
  fi
done
lab_log "initrd checked ($((SECONDS - t))s)"

mkdir -p "$OUT"
tmp=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT

# The lab kernel's module index, made complete by the tree's own depmod (this host has no kmod),
# then put into the tree the image is made of (debian-root.sh makes the tree anew when its recipe
# changes; this step puts the index back).
t=$SECONDS
lab_kver=$(cat "$KERNEL/version")
mkdir -p "$tmp/modroot/lib/modules"
cp -a "$KERNEL/modules/$lab_kver" "$tmp/modroot/lib/modules/"
IN_ROOT_BIND=$tmp "$HERE/in-root.sh" --suite "$SUITE" depmod -b "$tmp/modroot" "$lab_kver"
[ -s "$tmp/modroot/lib/modules/$lab_kver/modules.builtin.bin" ] || { lab_log "depmod made no index for $lab_kver"; exit 1; }
rm -rf --one-file-system "$ROOT/usr/lib/modules/$lab_kver"
cp -a "$tmp/modroot/lib/modules/$lab_kver" "$ROOT/usr/lib/modules/"
lab_log "module index of the lab kernel $lab_kver added ($((SECONDS - t))s)"

# Pinned file system identity: UUID and htree seed derived from the inputs,
# so the same tree gives the same file system metadata.
uuid=$(echo "$inputs_hash" | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-a\4-\5/')
t=$SECONDS
lab_log "mkfs.ext4 -d $ROOT -> raw $SIZE (label $LABEL, uuid $uuid)"
truncate -s "$SIZE" "$tmp/disk.raw"
E2FSPROGS_FAKE_TIME=$(stat -c %Y "$ROOT.stamp") \
  mkfs.ext4 -q -F -L "$LABEL" -U "$uuid" -E "hash_seed=$uuid,root_owner=0:0" \
  -d "$ROOT" "$tmp/disk.raw"
# A read-only fsck catches a bad copy now rather than at first boot.
if ! fsck_out=$(e2fsck -fn "$tmp/disk.raw" 2>&1); then
  printf '%s\n' "$fsck_out" >&2; lab_log "e2fsck found errors in the new image"; exit 1
fi
lab_log "mkfs.ext4 done ($((SECONDS - t))s)"

t=$SECONDS
qemu-img convert -f raw -O qcow2 "$tmp/disk.raw" "$tmp/$IMAGE"
lab_log "qemu-img convert done ($((SECONDS - t))s)"

# Kernel and initrd are root-only in /boot; qemu runs as root in the lab.
cp "$ROOT/boot/vmlinuz-$kver" "$tmp/vmlinuz"
cp "$ROOT/boot/initrd.img-$kver" "$tmp/initrd.img"
echo "$CMDLINE" > "$tmp/cmdline"
echo "$kver" > "$tmp/kernel-version"
for f in "$IMAGE" vmlinuz initrd.img cmdline kernel-version; do
  mv -f "$tmp/$f" "$OUT/$f"
done
echo "$inputs_hash" > "$OUT/stamp"
size=$(du -h "$OUT/$IMAGE" | cut -f1)
lab_log "image ready: $OUT/$IMAGE ($size on disk, $SIZE virtual), kernel $kver ($((SECONDS - t0))s total)"
echo "$CMDLINE"
