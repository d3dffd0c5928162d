# Sourced by every script in scripts/: the settings they share. The names that
# Python needs too (cache default, namespace, state dir) come from lab.env at
# the top of the checkout (lablib/names.py parses the same file).
# The cache is outside the checkout (a fresh clone reuses it); state and the
# secrets passphrase are per checkout, in the git-ignored .lab/.
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../lab.env
. "$LAB_ROOT/lab.env"
export LAB_CACHE=${LAB_CACHE:-$LAB_CACHE_DEFAULT}
export LAB_NETNS=${LAB_NETNS:-$LAB_NETNS_DEFAULT}
export LAB_STATE=${LAB_STATE:-$LAB_ROOT/$LAB_STATE_DIR}
export PULUMI_HOME=$LAB_CACHE/pulumi-home
export PATH=$LAB_CACHE/toolchain/bin:$LAB_ROOT/venv/bin:$PATH
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_SKIP_CONFIRMATIONS=true
export PULUMI_BACKEND_URL=file://$LAB_STATE/state
export PULUMI_CONFIG_PASSPHRASE_FILE=$LAB_STATE/passphrase
export LIBVIRT_DEFAULT_URI=qemu:///system

# Log lines on stderr, tagged with the script's name: [labns 12:00:00] ...
LAB_LOG_TAG=$(basename "$0" .sh)
lab_log() { printf '[%s %s] %s\n' "$LAB_LOG_TAG" "$(date +%T)" "$*" >&2; }

# The passphrase that encrypts this checkout's stack secrets: made once, never printed.
lab_passphrase() {
	mkdir -p "$LAB_STATE/state"
	if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
	fi
}

# Where each Debian suite's tree and lab image live: the default suite's at
# $LAB_CACHE/rootfs and $LAB_CACHE/image, any other suite's at rootfs-SUITE and
# image-SUITE (trixie: Debian 13, libreswan 5.x). lablib/names.py: suite_dir.
lab_suite_dir() { # lab_suite_dir rootfs|image SUITE
	if [ "$2" = "$LAB_DEFAULT_SUITE" ]; then echo "$LAB_CACHE/$1"; else echo "$LAB_CACHE/$1-$2"; fi
}

# The lines of qemu.conf that make the lab's QEMU run unprivileged, as Debian's
# libvirt does by default (lab.env names the account; lablib/names.py: QEMU_USER).
# No AppArmor or SELinux in these machines' kernels: libvirt's security driver is none.
lab_qemu_conf() {
	printf 'user = "%s"\ngroup = "%s"\n' "$LAB_QEMU_USER" "$LAB_QEMU_USER"
}

# lab_kvm_node FILE: a /dev/kvm node as Debian's udev rule makes it (root:kvm 0660) for a libvirtd's
# mount namespace to bind over /dev/kvm. Where there is no udev /dev/kvm is root's alone, and libvirt,
# finding KVM in the probe of a QEMU that cannot open it, probes again on every call (a domain start
# waits minutes for it). Makes nothing when /dev/kvm is absent or already the kvm group's.
lab_kvm_node() {
	rm -f "$1"
	if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
		mknod -m 660 "$1" c "$((0x$(stat -c %t /dev/kvm)))" "$((0x$(stat -c %T /dev/kvm)))"
		chgrp kvm "$1"
	fi
}
