#!/usr/bin/env bash
# build-kernel.sh: build the lab's own guest kernel into $LAB_CACHE/kernel:
#   bzImage          the kernel, every driver the lab VMs load built in (no initramfs)
#   config           its .config (also inside bzImage: CONFIG_IKCONFIG, read by lablib/kconfig.py)
#   modules/VERSION  its module index (modules.builtin*, modules.order): build-image.sh puts it
#                    into the images, where `modprobe openvswitch` needs it to see a built-in module
#   version          VERSION, the kernel's `uname -r`
# Why: no packaged Debian kernel has ESP in TCP (CONFIG_INET_ESPINTCP, the `tcp` remedy,
# docs/remedies.md). Source: Debian's linux-source package of LAB_KERNEL_SOURCE (lab.env), from
# this machine's mirror for trixie (scripts/apt-mirror.sh); options: kernel/lab.config on top of
# defconfig + kvm_guest.config. About 7 minutes on 2 cores; rebuilt only when this script,
# kernel/lab.config or the source version change (the build tree stays for a quicker rebuild).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
. "$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh"
t0=$SECONDS

OUT=$LAB_CACHE/kernel
CONFIG=$LAB_ROOT/kernel/lab.config
PACKAGE=${LAB_KERNEL_SOURCE%=*}   # linux-source-6.12
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
inputs_hash=$( { cat "$SCRIPT_PATH" "$CONFIG"; echo "$LAB_KERNEL_SOURCE"; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$inputs_hash" ] && [ -f "$OUT/bzImage" ]; then
  lab_log "kernel up to date: $OUT/bzImage ($(cat "$OUT/version"), $((SECONDS - t0))s)"
  exit 0
fi
for c in bison flex bc gcc make xz; do
  command -v "$c" >/dev/null || { lab_log "missing $c: run scripts/host-deps.sh"; exit 1; }
done
mkdir -p "$OUT/apt/lists/partial" "$OUT/apt/archives/partial"

# The source package, through apt with a sources list of its own (the host's apt state untouched).
t=$SECONDS
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' \
  "${LAB_DEBIAN_MIRROR:-$(apt_mirror trixie)}" >"$OUT/apt/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$OUT/apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
          -o "Dir::State::lists=$OUT/apt/lists" -o "Dir::Cache::archives=$OUT/apt/archives"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
deb=$(ls "$OUT"/apt/"$PACKAGE"_"${LAB_KERNEL_SOURCE#*=}"_all.deb 2>/dev/null || true)
if [ -z "$deb" ]; then
  apt-get "${apt_opts[@]}" update >&2
  (cd "$OUT/apt" && apt-get "${apt_opts[@]}" download "$LAB_KERNEL_SOURCE" >&2) \
    || { lab_log "cannot download $LAB_KERNEL_SOURCE from the trixie mirror (lab.env pins it)"; exit 1; }
  deb=$(ls "$OUT"/apt/"$PACKAGE"_*_all.deb)
fi
lab_log "source package $(basename "$deb") ($((SECONDS - t))s)"

t=$SECONDS
src=$OUT/build
if [ ! -f "$src/.source" ] || [ "$(cat "$src/.source")" != "$LAB_KERNEL_SOURCE" ]; then
  rm -rf --one-file-system "$src"
  mkdir -p "$src"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards "./usr/src/$PACKAGE.tar.*" \
    | tar -xJ -C "$src" --strip-components=1
  echo "$LAB_KERNEL_SOURCE" >"$src/.source"
  lab_log "source unpacked ($((SECONDS - t))s)"
fi

t=$SECONDS
make -C "$src" -s defconfig kvm_guest.config >&2
(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$CONFIG" >/dev/null)
make -C "$src" -s olddefconfig >&2
grep -qx 'CONFIG_INET_ESPINTCP=y' "$src/.config" || { lab_log "CONFIG_INET_ESPINTCP is not on after olddefconfig"; exit 1; }
lab_log "building the kernel with $(nproc) jobs (about 7 minutes on 2 cores)"
nice -n 10 make -C "$src" -s -j"$(nproc)" bzImage modules >&2  # modules: its index (none are modules)
version=$(make -C "$src" -s kernelrelease)
rm -rf --one-file-system "$src/modroot"
make -C "$src" -s INSTALL_MOD_PATH="$src/modroot" modules_install >&2
lab_log "kernel $version built ($((SECONDS - t))s)"

rm -rf --one-file-system "$OUT/modules.new"
mkdir -p "$OUT/modules.new"
cp -a "$src/modroot/lib/modules/$version" "$OUT/modules.new/"
rm -f "$OUT/modules.new/$version/build"   # a link into the build tree, meaningless in a guest
rm -rf --one-file-system "$OUT/modules"
mv "$OUT/modules.new" "$OUT/modules"
cp "$src/arch/x86/boot/bzImage" "$OUT/bzImage"
cp "$src/.config" "$OUT/config"
echo "$version" >"$OUT/version"
echo "$inputs_hash" >"$OUT/stamp"
lab_log "kernel ready: $OUT/bzImage ($version, $(du -h "$OUT/bzImage" | cut -f1), $((SECONDS - t0))s total)"
