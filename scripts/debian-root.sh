#!/usr/bin/env bash
# debian-root.sh [--suite SUITE] [--force]: build a Debian root tree with
# mmdebstrap: Debian 12 (bookworm, the default) at $CACHE/rootfs, another
# suite (trixie: Debian 13, libreswan 5.x) at $CACHE/rootfs-SUITE.
#
# The tree has two uses:
#   (a) the base of the lab VM disk image (scripts/build-image.sh), so it is
#       made to first-boot like a Debian cloud image (cloud-init NoCloud,
#       empty machine-id, no baked ssh host keys, serial console);
#   (b) the test suite runs Debian's own tools from it through
#       scripts/in-root.sh (ipsec addconn/algparse, cloud-init schema and
#       net-convert) without installing them on the host.
#
# Idempotent: the build is skipped when $ROOT.stamp holds the hash of
# this recipe (this file + suite + mirror settings).  --force rebuilds anyway
# (e.g. to pick up Debian security updates).
# Mirrors: this machine's apt sources (scripts/apt-mirror.sh), or
# LAB_DEBIAN_MIRROR / LAB_DEBIAN_SECURITY_MIRROR.
# Pinned: the suite, the package list below; the exact versions that
# got installed are recorded in $ROOT.manifest.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

CACHE=$LAB_CACHE
SUITE=bookworm
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --suite) SUITE=${2:?--suite needs a Debian suite name}; shift ;;
    *) echo "usage: $0 [--suite SUITE] [--force]" >&2; exit 2 ;;
  esac
  shift
done
ROOT=$(lab_suite_dir rootfs "$SUITE")
STAMP=$ROOT.stamp
MANIFEST=$ROOT.manifest
. "$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh"
MIRROR=${LAB_DEBIAN_MIRROR:-$(apt_mirror "$SUITE")}
SECURITY_MIRROR=${LAB_DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security")}

PACKAGES=(
  linux-image-cloud-amd64   # has esp4, ip_vti, xfrm_interface, ip_gre, openvswitch
  initramfs-tools zstd kmod
  systemd-sysv udev dbus
  libnss-myhostname         # the VM's own name resolves (sudo asks) with no DNS daemon
  cloud-init
  netplan.io                # cloud-init renders v2 config with netplan -> networkd
                            # (22.4's ENI renderer drops the default route)
  libreswan openvswitch-switch
  openssh-server sudo
  iproute2 iputils-ping tcpdump ethtool iptables
  procps less e2fsprogs netbase ca-certificates python3
  iperf3                    # `make bench`: overlay vs WAN goodput
)

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
# The lab's own seed reader, used instead of cloud-init when the kernel command line says
# cloud-init=disabled (guest/lab-seed says why).
GUEST=$LAB_ROOT/guest
SEED_FILES=("$GUEST/lab-seed" "$GUEST/lab-seed.service")
# Everything that decides the tree's content goes into the recipe hash.
recipe_hash=$( { cat "$SCRIPT_PATH" "${SEED_FILES[@]}"; echo "$LAB_SEED_STATE $LAB_UNIT_START_TIMEOUT $LAB_SSH_USER"; echo "$MIRROR $SECURITY_MIRROR $SUITE"; } | sha256sum | cut -d' ' -f1)

if [ $force -eq 0 ] && [ -d "$ROOT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$recipe_hash" ]; then
  lab_log "rootfs up to date at $ROOT ($((SECONDS - t0))s)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { lab_log "must run as root (mmdebstrap root mode, device nodes)"; exit 1; }
command -v mmdebstrap >/dev/null || { lab_log "mmdebstrap missing: run scripts/host-deps.sh"; exit 1; }

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/rootfs.build.XXXXXX")
# --one-file-system: never recurse into a /proc or /dev mmdebstrap left mounted.
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT

# Runs inside mmdebstrap's customize phase with $1 = the new root.
cat > "$work/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
R=$1
inr() { chroot "$R" "$@"; }

# cloud-init: only NoCloud (libvirt provider attaches an ISO labelled cidata);
# render networking with netplan (-> systemd-networkd). Only the modules the
# lab's payload (cloud-init/user-data.yaml.j2) uses: each stage is a Python
# process and each module costs time under software emulation. The config
# stage runs no module (masked below where it is a process of its own); the
# payload's runcmd runs in the final stage.
# ssh_pwauth/disable_root need no module: sshd_config.d/lab.conf below.
cat > "$R/etc/cloud/cloud.cfg.d/99_lab.cfg" <<'EOF'
# gre-ipsec-lab image: NoCloud seed ISO only, nothing fetched at boot.
datasource_list: [ NoCloud ]
system_info:
  network:
    renderers: [ netplan ]
# Only C.UTF-8 exists in the image; cloud-init's default (en_US.UTF-8) makes
# update-locale fail and marks the boot as errored.
locale: C.UTF-8
# One host key type: RSA key generation alone takes seconds without KVM.
ssh_genkeytypes: [ ed25519 ]
ssh_quiet_keygen: true
cloud_init_modules: [ write_files, set_hostname, update_hostname, users_groups, ssh ]
cloud_config_modules: []
cloud_final_modules: [ write_files_deferred, runcmd, scripts_user, final_message ]
EOF
inr systemctl mask cloud-init-hotplugd.socket
# cloud-init 24.3+ (Debian 13) runs every stage in one process
# (cloud-init-main.service) that waits for each stage's unit in turn: there
# cloud-config.service only signals it, and masked, final would never run.
[ -e "$R/usr/lib/systemd/system/cloud-init-main.service" ] || inr systemctl mask cloud-config.service
# netplan (which cloud-init renders with) adds netplan-ovs-cleanup.service
# whenever Open vSwitch is installed: a `netplan apply` in Python (~10 s) to
# undo OVS settings netplan never made here (the lab's OVS is lab-network's).
inr systemctl mask netplan-ovs-cleanup.service
echo 'LANG=C.UTF-8' > "$R/etc/default/locale"

# Networking: netplan writes networkd units. No systemd-resolved: the lab has no DNS to ask (its
# network config says use-dns: false), and it took 4 s of a boot's one vCPU.
inr systemctl enable systemd-networkd.service
# The lab services must come up on boot. ipsec only once the payload has
# enabled lab-network (its link in multi-user.target.wants, lablib/names.py
# MULTI_USER_WANTS), the step just before its runcmd starts them all: the
# boot's own start of ipsec, in the middle of the payload, started pluto before
# the tunnel device and its certificate were there (seen on 2026-12-05: the
# certificate import then restarted it, 5-20 s of a first boot).
inr systemctl enable openvswitch-switch.service ssh.service ipsec.service
# Open vSwitch's database, made once here: at first boot ovs-ctl made it, and
# with 17 VMs booting on 2 cores ovsdb-server's start then outlasted systemd's
# 90 s; ovs-vswitchd's start job failed with it, was never retried, and
# lab-network's ovs-vsctl waited for that daemon for ever (make bench-scale, 16
# spokes). Their start's bound is set after mmdebstrap (it comes from lab.env).
[ -e "$R/etc/openvswitch/conf.db" ] || inr ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
mkdir -p "$R/etc/systemd/system/ipsec.service.d"
# _stackmanager modprobes every IPsec and crypto module there is (~25 s of
# self-tests without KVM); the kernel loads the algorithms a SA uses itself.
# No --checknss (the NSS database is made below, at build time) and no
# --checknflog (a shell script and a second config parse for nflog, which the
# lab never sets): each was a second of the tunnel's critical path.
cat > "$R/etc/systemd/system/ipsec.service.d/lab.conf" <<'EOF'
[Unit]
ConditionPathExists=/etc/systemd/system/multi-user.target.wants/lab-network.service
[Service]
ExecStartPre=
ExecStartPre=/usr/libexec/ipsec/addconn --config /etc/ipsec.conf --checkconfig
ExecStartPre=/sbin/modprobe -a xfrm_user esp4
# pluto without --leak-detective (libreswan's unit turns it on: every allocation checked and
# wiped, pluto's own debugging aid), as Debian's init script started it.
ExecStart=
ExecStart=/usr/libexec/ipsec/pluto --config /etc/ipsec.conf --nofork
EOF
inr systemctl enable serial-getty@ttyS0.service
# Units the lab never uses, each a process or a wait in a 1-vCPU emulated boot:
# apt's timers (no internet), e2scrub (LVM snapshots), fstrim and dpkg backups
# (throw-away disks), the VGA getty (serial console only), pstore.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service e2scrub_all.timer \
    fstrim.timer dpkg-db-backup.timer getty@tty1.service systemd-pstore.service; do
  inr systemctl disable "$unit" >/dev/null 2>&1 || true
done
# Static units the lab never uses, masked: each is a process or a mount that
# competes with the tunnel's critical path for the one emulated vCPU (about a
# second each at boot): modules and file systems for DRM, FUSE, device mapper,
# loop devices, configfs, debugfs, tracing, hugepages, POSIX message queues and
# binfmt_misc, the kernel command line's network config (lab-seed or
# cloud-init writes the network's), utmp, the random seed (the kernel's RNG is
# ready about 2 s into the kernel's own boot, before systemd starts), the
# journal's flush (it stays in memory, below). No unit the lab starts requires one.
for unit in modprobe@drm.service modprobe@fuse.service modprobe@dm_mod.service \
    modprobe@loop.service modprobe@configfs.service \
    sys-fs-fuse-connections.mount sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount dev-hugepages.mount dev-mqueue.mount \
    proc-sys-fs-binfmt_misc.automount systemd-binfmt.service systemd-network-generator.service \
    systemd-update-utmp.service systemd-update-utmp-runlevel.service \
    systemd-random-seed.service systemd-journal-flush.service; do
  inr systemctl mask "$unit" >/dev/null
done
# Generators the lab never needs, masked: systemd runs every generator before
# it starts a unit, each a process of 0.1-0.2 s of the one vCPU (about 1.4 s
# for these, measured on a lab VM). No encrypted, integrity or verity volumes,
# no GPT auto-discovery, hibernation, TPM, system updates, rc.local, SysV-only
# init scripts or SSH over vsock; the serial getty is enabled above; the
# command line's systemd.run=/systemd.mask= are debugging aids the lab does not
# use. Kept: fstab's, netplan's (a reboot's networkd files), cloud-init's.
mkdir -p "$R/etc/systemd/system-generators"
for generator in systemd-cryptsetup-generator systemd-integritysetup-generator \
    systemd-veritysetup-generator systemd-gpt-auto-generator systemd-hibernate-resume-generator \
    systemd-tpm2-generator systemd-system-update-generator systemd-rc-local-generator \
    systemd-sysv-generator systemd-ssh-generator systemd-getty-generator \
    systemd-debug-generator systemd-run-generator; do
  ln -sf /dev/null "$R/etc/systemd/system-generators/$generator"
done
# In a boot with lab-seed (cloud-init=disabled) nothing uses D-Bus or logind:
# no pam_systemd in the image (no login sessions), networkd needs neither, and
# systemctl talks to systemd directly as root. Skipped there: about 1 s of CPU
# (dbus-daemon, logind) while networkd and the tunnel start. A boot with
# cloud-init keeps both (it sets the hostname with hostnamectl).
for unit in dbus.socket dbus.service systemd-logind.service; do
  mkdir -p "$R/etc/systemd/system/$unit.d"
  printf '[Unit]\nConditionKernelCommandLine=!cloud-init=disabled\n' > "$R/etc/systemd/system/$unit.d/lab.conf"
done
# udev's coldplug without the virtual terminals (tty0-63 and their vcs
# devices, about 90 of a lab VM's 290 devices and 0.5 s of udevd's CPU): there
# is no screen. The serial console, /dev/console, /dev/tty and /dev/ptmx (sshd's
# terminals) still get their events.
mkdir -p "$R/etc/systemd/system/systemd-udev-trigger.service.d"
cat > "$R/etc/systemd/system/systemd-udev-trigger.service.d/lab.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-udevadm trigger --type=all --action=add --prioritized-subsystem=module,block,tpmrm,net,input --subsystem-nomatch=tty --subsystem-nomatch=vc
ExecStart=-udevadm trigger --type=devices --action=add --sysname-match=ttyS0 --sysname-match=console --sysname-match=tty --sysname-match=ptmx
EOF
# OVS's record of the hostname in its database (nothing reads it) cannot be
# masked: openvswitch-switch requires it. A condition never met skips it.
mkdir -p "$R/etc/systemd/system/ovs-record-hostname.service.d"
printf '[Unit]\nConditionPathExists=/etc/openvswitch/record-hostname\n' \
  > "$R/etc/systemd/system/ovs-record-hostname.service.d/lab.conf"
# The journal in memory only: no flush of the boot's messages to the emulated
# disk (systemd-journal-flush) and no journal writes on it. No lab tool reads
# an earlier boot's journal (the host keeps each VM's serial console output).
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/lab.conf"
# libreswan's NSS database, made once here instead of by `ipsec --checknss`
# at every first boot (it holds no key: the lab authenticates with PSKs).
inr ipsec initnss >/dev/null
# networkd-wait-online would hold boot for 2 min on a NIC left unconfigured.
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$R/etc/systemd/system/systemd-networkd-wait-online.service.d/lab.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
EOF

# ssh host keys are per instance: none baked in, one type (ed25519) only.
# cloud-init's ssh module makes it before ssh.service; the ExecStartPre is
# the fallback in case cloud-init did not (it must run before sshd -t).
# Keys only, never passwords (what the payload's ssh_pwauth: false asks).
rm -f "$R"/etc/ssh/ssh_host_*
cat > "$R/etc/ssh/sshd_config.d/lab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
mkdir -p "$R/etc/systemd/system/ssh.service.d"
cat > "$R/etc/systemd/system/ssh.service.d/lab.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
EOF
# No `sshd -t` before every start: a second sshd reading the same config, about a second of a
# boot's one vCPU; a config sshd refuses fails `sshd -D` the same way.
# A new SSH connection cost a Debian 12 lab VM about 0.94 s of CPU under emulation (labctl opens one
# per node and thread: verify of 16 spokes opens 25). Two parts did nothing for the lab: pam_motd
# running update-motd.d's scripts at every login (about 0.18 s; nobody reads a motd here), and sshd
# executing itself anew for every connection, config and keys read again (about 0.21 s): before
# OpenSSH 9.8 (Debian 12) `-r` makes it fork instead; from 9.8 on (Debian 13) every connection
# runs sshd-session anyway and `-r` is deprecated. docs/performance.md, "Boot".
sed -i 's/^session[[:space:]]\+optional[[:space:]]\+pam_motd\.so/# lab: no motd: &/' "$R/etc/pam.d/sshd"
if grep -q '^session[[:space:]]\+optional[[:space:]]\+pam_motd' "$R/etc/pam.d/sshd"; then
  echo "debian-root.sh: pam_motd still in $R/etc/pam.d/sshd" >&2; exit 1
fi
if [ ! -e "$R/usr/lib/openssh/sshd-session" ]; then
  printf '%s\n' 'ExecStart=' 'ExecStart=/usr/sbin/sshd -D -r $SSHD_OPTS' >> "$R/etc/systemd/system/ssh.service.d/lab.conf"
fi

# The initramfs only has to find /dev/vda (ext4 is built into the cloud
# kernel): a list instead of MODULES=most, a few MB less to unpack and fewer
# modules for udev to load in the initramfs on every boot. It also loads the
# seed's CD-ROM drivers (libvirt's cloud-init ISO is an IDE CD-ROM): left to
# udev's coldplug they come 18-30 s into a boot under emulation, and lab-seed
# waited for them; loaded here, the CD-ROM is probed (in the background) while
# the boot goes on, and is there by the time lab-seed starts.
echo MODULES=list > "$R/etc/initramfs-tools/conf.d/lab.conf"
printf '%s\n' virtio_pci virtio_blk ata_piix sr_mod >> "$R/etc/initramfs-tools/modules"
inr update-initramfs -u -k all

# Empty machine-id: systemd generates one on first boot (cloud image style).
: > "$R/etc/machine-id"
if [ -f "$R/var/lib/dbus/machine-id" ] && [ ! -L "$R/var/lib/dbus/machine-id" ]; then
  rm -f "$R/var/lib/dbus/machine-id"
fi

# root: no password (locked); access is by the cloud-init user's ssh key.
inr usermod -p '*' root

echo localhost > "$R/etc/hostname"
cat > "$R/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
EOF
cat > "$R/etc/fstab" <<'EOF'
# The image is a whole-disk ext4 (no partition table), label rootfs.
LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1
EOF

# No apt sources reaching the internet at boot (package_update must not hang).
cat > "$R/etc/apt/sources.list" <<'EOF'
# Empty on purpose: the lab VMs have no internet.  Packages are baked in by
# scripts/debian-root.sh.
EOF
rm -f "$R"/etc/apt/sources.list.d/*

# resolv.conf with no name server: a lookup fails at once instead of waiting on one.
rm -f "$R/etc/resolv.conf"
printf '# No DNS in the lab (scripts/debian-root.sh).\noptions timeout:1 attempts:1\n' > "$R/etc/resolv.conf"

# Nothing from the build that would make the image look already booted.
rm -rf "$R"/var/lib/cloud/* "$R"/var/log/cloud-init* "$R"/var/lib/apt/lists/* \
       "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/tmp/* \
       "$R"/var/tmp/*
# /etc and /var are up to date with /usr (what systemd-update-done, not
# shipped in Debian 12, would write): no ConditionNeedsUpdate unit
# (systemd-sysusers) runs at first boot.
for d in etc var; do
  printf 'TIMESTAMP_NSEC=%s\n' "$(stat -c %.9Y "$R/usr" | tr -d .)" > "$R/$d/.updated"
  touch -r "$R/usr" "$R/$d/.updated"
done
HOOK
chmod +x "$work/customize.sh"

pkgs=$(IFS=,; echo "${PACKAGES[*]}")
t=$SECONDS
lab_log "mmdebstrap $SUITE (${#PACKAGES[@]} packages + deps) into $work/root"
# Docs/man/locales are dead weight in a lab VM (copyright files are kept).
mmdebstrap --variant=apt --mode=root --arch=amd64 \
  --include="$pkgs" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook="$work/customize.sh \"\$1\"" \
  "$SUITE" "$work/root" \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main" >&2
lab_log "mmdebstrap done ($((SECONDS - t))s)"

install -m 0755 "$GUEST/lab-seed" "$work/root/usr/local/sbin/lab-seed"
install -m 0644 "$GUEST/lab-seed.service" "$work/root/etc/systemd/system/"
echo "LAB_SEED_STATE=$LAB_SEED_STATE" > "$work/root/etc/default/lab-seed"
# Once applied (or failed), later boots skip it without starting Python: networkd and sshd wait for it.
mkdir -p "$work/root/etc/systemd/system/lab-seed.service.d"
printf '[Unit]\nConditionPathExists=!%s/status\n' "$LAB_SEED_STATE" \
  > "$work/root/etc/systemd/system/lab-seed.service.d/once.conf"
chroot "$work/root" systemctl enable lab-seed.service
# OVS's daemons, started as ovs-ctl starts them (the same arguments, files and sockets) but without
# ovs-ctl: its shell, ovsdb-tool's schema checks, and ovs-vsctl calls that record versions and a
# system ID nothing in the lab reads took 7 s of ovsdb-server's start and 3 s of ovs-vswitchd's on a
# boot's one vCPU. The database is made above, here with its root row; the stop commands stay ovs-ctl's.
# Each starts within LAB_UNIT_START_TIMEOUT, as lab-network does (the hook above says why).
chroot "$work/root" ovsdb-tool transact /etc/openvswitch/conf.db \
  '["Open_vSwitch",{"op":"insert","table":"Open_vSwitch","row":{}}]' >/dev/null
ovs_run=/var/run/openvswitch ovs_log=/var/log/openvswitch
mkdir -p "$work/root/etc/systemd/system/ovsdb-server.service.d" "$work/root/etc/systemd/system/ovs-vswitchd.service.d"
cat > "$work/root/etc/systemd/system/ovsdb-server.service.d/lab.conf" <<EOF
[Service]
TimeoutStartSec=$LAB_UNIT_START_TIMEOUT
Nice=-10
RuntimeDirectory=openvswitch
RuntimeDirectoryPreserve=yes
PIDFile=$ovs_run/ovsdb-server.pid
ExecStart=
ExecStart=/usr/sbin/ovsdb-server /etc/openvswitch/conf.db -vconsole:emer -vsyslog:err -vfile:info \\
  --remote=punix:$ovs_run/db.sock --remote=db:Open_vSwitch,Open_vSwitch,manager_options \\
  --private-key=db:Open_vSwitch,SSL,private_key --certificate=db:Open_vSwitch,SSL,certificate \\
  --bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert \\
  --no-chdir --log-file=$ovs_log/ovsdb-server.log --pidfile=$ovs_run/ovsdb-server.pid --detach
EOF
# ovs-vswitchd starts once the system has been up 11 s. Open vSwitch 3.1 (bookworm's) counts no CPU
# in a system's first 10 s (count_cpu_cores() refreshes every 10 s of a clock that starts at boot):
# a reboot, without ovs-ctl's seconds, started it at 6 s; its bridge, from the database, got no
# upcall handler, and every upcall of the kernel datapath was lost for good (`ovs-appctl dpctl/show`:
# "lost" as high as "missed"), so the spoke's overlay never came back. A first boot starts it later.
# The module is built into the lab's kernel; under a Debian kernel modprobe loads it, as ovs-ctl did.
cat > "$work/root/usr/local/sbin/lab-ovs-wait-boot" <<'EOF'
#!/bin/sh
read -r up _ </proc/uptime
up=${up%.*}
[ "$up" -ge 11 ] || sleep $((11 - up))
EOF
chmod 0755 "$work/root/usr/local/sbin/lab-ovs-wait-boot"
cat > "$work/root/etc/systemd/system/ovs-vswitchd.service.d/lab.conf" <<EOF
[Service]
TimeoutStartSec=$LAB_UNIT_START_TIMEOUT
Nice=-10
PIDFile=$ovs_run/ovs-vswitchd.pid
ExecStartPre=/usr/local/sbin/lab-ovs-wait-boot
ExecStartPre=-/sbin/modprobe openvswitch
ExecStart=
ExecStart=/usr/sbin/ovs-vswitchd unix:$ovs_run/db.sock -vconsole:emer -vsyslog:err -vfile:info --mlockall \\
  --no-chdir --log-file=$ovs_log/ovs-vswitchd.log --pidfile=$ovs_run/ovs-vswitchd.pid --detach
EOF

# sudo for the lab's account (lab.env) without a pseudo-terminal, PAM session or syslog line per
# command: the lab runs every command through it (labctl.node), and those took a fifth of each
# command's guest CPU (0.31 s against 0.25 s, `sudo sh -c true` over SSH under emulation).
printf 'Defaults:%s !use_pty, !pam_session, !pam_setcred, !syslog\n' "$LAB_SSH_USER" > "$work/root/etc/sudoers.d/lab"
chmod 0440 "$work/root/etc/sudoers.d/lab"
chroot "$work/root" visudo -c -q

chroot "$work/root" dpkg-query -W -f='${Package} ${Version}\n' > "$work/manifest"
# Swap in the new tree only once it is complete.
rm -rf --one-file-system "$ROOT"
mv "$work/root" "$ROOT"
mv "$work/manifest" "$MANIFEST"
echo "$recipe_hash" > "$STAMP"
lab_log "kernel: $(ls "$ROOT"/boot/ | grep '^vmlinuz' | tr '\n' ' ')"
lab_log "rootfs ready at $ROOT: $(du -sh "$ROOT" | cut -f1), $(wc -l < "$MANIFEST") packages ($((SECONDS - t0))s total)"
