#!/usr/bin/env bash
# labns.sh start|stop|status|exec CMD...
#
# The lab's libvirt lives in its own network namespace (${LAB_NETNS:-gre-lab}):
# libvirtd and virtlogd are started INSIDE it (no systemd here: plain
# `libvirtd -d`), so the bridges, dnsmasq, NAT rules and every packet of the
# lab stay in the namespace.  libvirtd's unix socket (/run/libvirt) is on the
# shared file system, so virsh and Pulumi on the host use qemu:///system as
# usual.
#
#   start   create the namespace (lo up), start virtlogd + libvirtd in it and
#           wait until `virsh -c qemu:///system version` answers.  Already
#           running: says so.  Creates no network, pool or domain: the Pulumi
#           program declares its own storage pool (there is no "default").
#           What a fresh daemon finds defined was left by a killed run: removed.
#   stop    destroy and undefine every domain, network and storage pool
#           libvirt has (volume files are left on disk; Debian's packaged,
#           inactive "default" network is left defined), stop the daemons,
#           end what is left in the namespace and delete it.
#   status  say whether the namespace and daemons are up.
#   exec    run CMD inside the namespace (ssh to a VM, ping, tcpdump...).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

NS=$LAB_NETNS
CACHE=$LAB_CACHE
URI=$LIBVIRT_DEFAULT_URI
LIBVIRTD_PID=/run/libvirtd.pid
VIRTLOGD_PID=/run/virtlogd.pid
CONF_DIR=$CACHE/labns

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
ns_exists() { [ -e "/run/netns/$NS" ]; }
answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }
# Name of the namespace a PID lives in ("" = the host's).
ns_of() { ip netns identify "$1" 2>/dev/null || true; }

need_root() { [ "$(id -u)" -eq 0 ] || { lab_log "must run as root"; exit 1; }; }

# Destroy and undefine every domain, network and storage pool of the lab's libvirtd (volume files
# stay on disk; Debian's packaged, never started "default" network stays defined).
forget_all() {
  local v=(virsh -q -c "$URI") d n p
  for d in $("${v[@]}" list --name); do
    "${v[@]}" destroy "$d" >/dev/null && lab_log "destroyed domain $d"
  done
  for d in $("${v[@]}" list --all --name); do
    # --nvram/--managed-save would fail on domains without them; try both.
    "${v[@]}" undefine "$d" --managed-save --snapshots-metadata >/dev/null 2>&1 \
      || "${v[@]}" undefine "$d" >/dev/null
    lab_log "undefined domain $d"
  done
  for n in $("${v[@]}" net-list --name); do
    "${v[@]}" net-destroy "$n" >/dev/null && lab_log "destroyed network $n"
  done
  for n in $("${v[@]}" net-list --all --name); do
    [ "$n" = default ] && continue   # Debian's packaged network, never started here
    "${v[@]}" net-undefine "$n" >/dev/null && lab_log "undefined network $n"
  done
  for p in $("${v[@]}" pool-list --name); do
    "${v[@]}" pool-destroy "$p" >/dev/null && lab_log "stopped pool $p"
  done
  for p in $("${v[@]}" pool-list --all --name); do
    "${v[@]}" pool-undefine "$p" >/dev/null && lab_log "undefined pool $p (files kept)"
  done
}

start() {
  need_root
  if alive "$LIBVIRTD_PID"; then
    local where; where=$(ns_of "$(cat "$LIBVIRTD_PID")")
    if [ "$where" != "$NS" ]; then
      # There can be only one system libvirtd (one /run/libvirt socket).
      lab_log "libvirtd (pid $(cat "$LIBVIRTD_PID")) already runs in namespace '${where:-host}', not '$NS': stop it first"
      exit 1
    fi
    if answers; then lab_log "already running: libvirtd pid $(cat "$LIBVIRTD_PID") in namespace $NS"; return 0; fi
    lab_log "libvirtd pid $(cat "$LIBVIRTD_PID") in $NS does not answer: run '$0 stop' first"; exit 1
  fi
  command -v libvirtd >/dev/null || { lab_log "libvirtd missing: run scripts/host-deps.sh"; exit 1; }

  if ! ns_exists; then
    ip netns add "$NS"
    lab_log "created network namespace $NS"
  fi
  ip netns exec "$NS" ip link set lo up

  # qemu runs as Debian's unprivileged $LAB_QEMU_USER, as the package has it: it
  # reads only the pool's files (libvirt hands them over: dynamic_ownership),
  # never the cache under root's home.  The override is bind-mounted only in
  # the daemons' private mount namespace (created by `ip netns exec`), so the
  # host's /etc/libvirt stays untouched.
  mkdir -p "$CONF_DIR"
  { cat /etc/libvirt/qemu.conf
    printf '\n# gre-ipsec-lab (scripts/labns.sh)\n'
    lab_qemu_conf
  } > "$CONF_DIR/qemu.conf.new"
  mv "$CONF_DIR/qemu.conf.new" "$CONF_DIR/qemu.conf"

  local t=$SECONDS
  # Both daemons double-fork (-d) and write their pid files under /run.
  # /dev/kvm as Debian's udev rule makes it, in that mount namespace only (lab_kvm_node).
  lab_kvm_node "$CONF_DIR/kvm"
  ip netns exec "$NS" sh -ec '
    mount --bind "$1" /etc/libvirt/qemu.conf
    if [ -c "$2" ]; then mount --bind "$2" /dev/kvm; fi
    virtlogd -d
    libvirtd -d
  ' labns "$CONF_DIR/qemu.conf" "$CONF_DIR/kvm"
  local i
  for i in $(seq 1 60); do
    if answers; then break; fi
    sleep 0.5
  done
  answers || { lab_log "libvirtd did not answer on $URI within 30s"; exit 1; }
  # `stop` leaves nothing defined: what a fresh daemon finds is a killed run's (CI's hard limit once
  # cut a `stop` short, and the next run's `pulumi up` failed on "network ... already exists").
  if [ -n "$(virsh -q -c "$URI" list --all --name)$(virsh -q -c "$URI" pool-list --all --name)$(
        virsh -q -c "$URI" net-list --all --name | grep -vx default)" ]; then
    lab_log "removing what a run stopped before '$0 stop' ended left defined"
    forget_all
  fi
  lab_log "libvirtd $(cat "$LIBVIRTD_PID") and virtlogd $(cat "$VIRTLOGD_PID" 2>/dev/null || echo '?') up in namespace $NS ($((SECONDS - t))s)"

  local pools nets
  pools=$(virsh -c "$URI" pool-list --all --name | sed '/^$/d' | tr '\n' ' ')
  nets=$(virsh -c "$URI" net-list --all --name | sed '/^$/d' | tr '\n' ' ')
  lab_log "storage pools: ${pools:-none} (none is created here: the Pulumi program declares its own)"
  lab_log "networks defined: ${nets:-none}"
}

stop() {
  need_root
  if alive "$LIBVIRTD_PID" && [ "$(ns_of "$(cat "$LIBVIRTD_PID")")" != "$NS" ]; then
    lab_log "libvirtd runs outside namespace $NS: not touching it"; exit 1
  fi
  if alive "$LIBVIRTD_PID" && answers; then
    forget_all
  fi
  local f pid
  for f in "$LIBVIRTD_PID" "$VIRTLOGD_PID"; do
    if alive "$f"; then
      pid=$(cat "$f")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      lab_log "stopped $(basename "$f" .pid) (pid $pid)"
    fi
  done
  if ns_exists; then
    # Whatever is left in the namespace (dnsmasq or qemu of a daemon that
    # was not answering) was started by the lab: end it by pid.
    for pid in $(ip netns pids "$NS"); do
      lab_log "killing leftover pid $pid in $NS: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
      kill "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in $(ip netns pids "$NS"); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$NS"
    lab_log "deleted network namespace $NS"
  fi
  lab_log "stopped ($((SECONDS - t0))s)"
}

status() {
  if ns_exists; then lab_log "namespace $NS exists"; else lab_log "namespace $NS absent"; fi
  if alive "$LIBVIRTD_PID"; then
    lab_log "libvirtd pid $(cat "$LIBVIRTD_PID") in namespace '$(ns_of "$(cat "$LIBVIRTD_PID")")'; answers: $(answers && echo yes || echo no)"
  else
    lab_log "libvirtd not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  exec)
    shift
    [ $# -gt 0 ] || { lab_log "usage: $0 exec CMD..."; exit 2; }
    ns_exists || { lab_log "namespace $NS absent: run '$0 start'"; exit 1; }
    exec ip netns exec "$NS" "$@" ;;
  *) echo "usage: $0 start|stop|status|exec CMD..." >&2; exit 2 ;;
esac
