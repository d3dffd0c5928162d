#!/usr/bin/env bash
# hosts.sh start|stop|status|env|exec a|b|ctl CMD...
#
# Two simulated libvirt hypervisors on this machine (issue 9, "two hosts on
# this machine"), and a controller that reaches them the way Pulumi reaches
# real ones: over qemu+ssh.
#
#   host a, host b  each a network namespace (gre-host-a, gre-host-b) whose
#                   daemons share one private mount namespace: its own
#                   virtlogd, libvirtd and sshd, its own /run/libvirt (tmpfs),
#                   /etc/libvirt, /var/lib/libvirt, /var/log/libvirt and
#                   /var/cache/libvirt (from $LAB_STATE/hosts/HOST), and an
#                   empty tmpfs over the controller's cache ($LAB_CACHE), so a
#                   file Pulumi forgets to upload is missing there.
#   the LAN         a veth pair between a (172.31.0.1/24) and b (172.31.0.2/24):
#                   those are the hosts' uplink addresses.
#   controller      namespace gre-host-ctl, one veth pair to each host, host
#                   routes to both uplinks: Pulumi runs there (exec ctl ...).
#
# No address, route or daemon is added to the machine's own namespace, and
# nothing is sent anywhere else.  The daemons never touch the lab's libvirtd
# (namespace gre-lab, the shared /run/libvirt and /run/*.pid): their sockets are
# private and their pid files live under $LAB_STATE/hosts, so no VM lock is needed.
#
#   start   make the key pair, host keys, known_hosts and namespaces, start the
#           daemons and wait until `virsh -c qemu+ssh://root@UPLINK/system list`
#           answers from the controller for both hosts.  Already running: says so.
#           Namespaces a killed run left with nothing in them are taken back first;
#           any with a process in it: refused (another run's).
#   stop    end every process in the three namespaces, delete them and
#           $LAB_STATE/hosts: nothing is left behind.
#   status  what runs; exit 1 unless everything does.
#   env     KEY=VALUE lines: each host's provider URI, virsh URI and uplink.
#   exec    run CMD in the controller (ctl) or inside a host (network + mount namespace).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
t0=$SECONDS

PREFIX=${LAB_HOSTS_PREFIX:-gre-host}
DIR=$LAB_STATE/hosts
HOSTS=(a b)
CTL=$PREFIX-ctl
declare -A UPLINK=([a]=172.31.0.1 [b]=172.31.0.2)
declare -A CTL_NET=([a]=172.31.1 [b]=172.31.2)  # controller .1, host .2, a /30 each

ns() { echo "$PREFIX-$1"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
need_root() { [ "$(id -u)" -eq 0 ] || { lab_log "must run as root (network and mount namespaces)"; exit 1; }; }
provider_uri() { echo "qemu+ssh://root@${UPLINK[$1]}/system?keyfile=$DIR/id_ed25519&knownhosts=$DIR/known_hosts"; }
virsh_uri() { echo "qemu+ssh://root@${UPLINK[$1]}/system?command=$DIR/ssh"; }
answers() { timeout 20 ip netns exec "$CTL" virsh -q -c "$(virsh_uri "$1")" version >/dev/null 2>&1; }

# A key pair for the controller, a host key per host, and the files both ssh
# clients need (OpenSSH for virsh, the provider's Go client): made once per start.
make_keys() {
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  [ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "hosts.sh controller" -f "$DIR/id_ed25519"
  cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
  : >"$DIR/known_hosts"
  local h
  for h in "${HOSTS[@]}"; do
    mkdir -p "$DIR/$h"
    [ -f "$DIR/$h/ssh_host_ed25519_key" ] ||
      ssh-keygen -q -t ed25519 -N "" -C "host $h" -f "$DIR/$h/ssh_host_ed25519_key"
    echo "${UPLINK[$h]} $(cut -d' ' -f1,2 "$DIR/$h/ssh_host_ed25519_key.pub")" >>"$DIR/known_hosts"
  done
  cat >"$DIR/ssh_config" <<EOF
Host *
  User root
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
EOF
  cat >"$DIR/ssh" <<EOF
#!/bin/sh
# OpenSSH with the simulated hosts' key and known_hosts (virsh: ?command=this file)
exec ssh -F "$DIR/ssh_config" "\$@"
EOF
  chmod 755 "$DIR/ssh"
}

# The host's own /etc/libvirt: the machine's daemon config files (not its
# networks, pools or domains), qemu running as the lab's does (labns.sh).
host_config() {
  local h=$1 d=$DIR/$1
  # qemu/: where libvirt (and the lab's console logs) expect it, as the package makes it.
  mkdir -p "$d/etc-libvirt" "$d/var-lib-libvirt" "$d/var-log-libvirt/qemu" "$d/var-cache-libvirt"
  find /etc/libvirt -maxdepth 1 -type f -name '*.conf' -exec cp {} "$d/etc-libvirt/" \;
  [ -d /etc/libvirt/nwfilter ] && cp -r /etc/libvirt/nwfilter "$d/etc-libvirt/"
  { printf '\n# scripts/hosts.sh\n'; lab_qemu_conf; } >>"$d/etc-libvirt/qemu.conf"
  cat >"$d/sshd_config" <<EOF
# scripts/hosts.sh: host $h's sshd, the controller's only way in
ListenAddress ${UPLINK[$h]}
Port 22
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The provider tunnels to libvirtd's unix socket (direct-streamlocal).
AllowStreamLocalForwarding yes
# The state directory sits in the checkout, whose modes sshd would judge.
StrictModes no
EOF
}

links() {
  local h
  for h in ctl "${HOSTS[@]}"; do
    ip netns add "$PREFIX-$h"
    ip -n "$PREFIX-$h" link set lo up
  done
  ip link add lan-a netns "$(ns a)" type veth peer name lan-b netns "$(ns b)"
  for h in "${HOSTS[@]}"; do
    ip -n "$(ns "$h")" addr add "${UPLINK[$h]}/24" dev "lan-$h"
    ip -n "$(ns "$h")" link set "lan-$h" up
    ip link add "to-$h" netns "$CTL" type veth peer name ctl netns "$(ns "$h")"
    ip -n "$CTL" addr add "${CTL_NET[$h]}.1/30" dev "to-$h"
    ip -n "$(ns "$h")" addr add "${CTL_NET[$h]}.2/30" dev ctl
    ip -n "$CTL" link set "to-$h" up
    ip -n "$(ns "$h")" link set ctl up
    ip -n "$CTL" route add "${UPLINK[$h]}/32" via "${CTL_NET[$h]}.2"
  done
}

start_host() {
  local h=$1 d=$DIR/$1
  mkdir -p /run/sshd  # sshd's privilege separation directory (compiled in)
  # ip netns exec gives the command its own mount namespace; the daemons
  # started here keep it, and nothing mounted here is seen outside.
  lab_kvm_node "$d/kvm"  # bound over /dev/kvm below, as labns.sh does for the lab's libvirtd
  ip netns exec "$(ns "$h")" sh -ec '
    d=$1 cache=$2
    if [ -c "$d/kvm" ]; then mount --bind "$d/kvm" /dev/kvm; fi
    mount -t tmpfs -o mode=0755,size=16m tmpfs /run/libvirt
    mount --bind "$d/etc-libvirt" /etc/libvirt
    mount --bind "$d/var-lib-libvirt" /var/lib/libvirt
    mount --bind "$d/var-log-libvirt" /var/log/libvirt
    mount --bind "$d/var-cache-libvirt" /var/cache/libvirt
    mount -t tmpfs -o mode=0700,size=1m tmpfs "$cache"
    virtlogd -d -p "$d/virtlogd.pid"
    libvirtd -d -p "$d/libvirtd.pid"
    /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
  ' hosts "$d" "$LAB_CACHE"
}

running() {
  local h
  for h in ctl "${HOSTS[@]}"; do [ -e "/run/netns/$PREFIX-$h" ] || return 1; done
  for h in "${HOSTS[@]}"; do
    alive "$DIR/$h/libvirtd.pid" && alive "$DIR/$h/virtlogd.pid" && alive "$DIR/$h/sshd.pid" || return 1
  done
}

leftovers() {
  local h found=""
  for h in ctl "${HOSTS[@]}"; do [ -e "/run/netns/$PREFIX-$h" ] && found+=" namespace $PREFIX-$h"; done
  [ -d "$DIR" ] && found+=" $DIR"
  echo "$found"
}

# Every process in the hosts' namespaces, one pid a line.
ns_pids() {
  local h
  for h in ctl "${HOSTS[@]}"; do [ -e "/run/netns/$PREFIX-$h" ] && ip netns pids "$PREFIX-$h"; done
  return 0
}

start() {
  need_root
  local h
  for c in libvirtd virtlogd virsh /usr/sbin/sshd ssh ssh-keygen; do
    command -v "$c" >/dev/null || { lab_log "$c missing: run scripts/host-deps.sh"; exit 1; }
  done
  if running; then
    for h in "${HOSTS[@]}"; do answers "$h" || { lab_log "host $h does not answer: run '$0 stop' first"; exit 1; }; done
    lab_log "already running: hosts ${HOSTS[*]} answer over qemu+ssh"
    return 0
  fi
  local left; left=$(leftovers)
  if [ -n "$left" ]; then
    # A run killed before its `stop` (CI's limit, a session's end) leaves namespaces with nothing in
    # them: those are taken back. A process still in one belongs to a live run: never touched.
    local pids; pids=$(ns_pids)
    if [ -n "$pids" ]; then
      lab_log "hosts in use by another run:$left; processes ${pids//$'\n'/ }; run '$0 stop' to end them"; exit 1
    fi
    lab_log "taking back what a killed run left:$left"
    stop
  fi
  make_keys
  for h in "${HOSTS[@]}"; do host_config "$h"; done
  links
  for h in "${HOSTS[@]}"; do start_host "$h"; done
  for h in "${HOSTS[@]}"; do
    for _ in $(seq 1 60); do answers "$h" && break; sleep 0.5; done
    if ! answers "$h"; then
      lab_log "host $h: virsh over qemu+ssh://root@${UPLINK[$h]} does not answer (see $DIR/$h/sshd.log)"; exit 1
    fi
    lab_log "host $h up: libvirtd $(cat "$DIR/$h/libvirtd.pid"), sshd $(cat "$DIR/$h/sshd.pid"), uplink ${UPLINK[$h]}"
  done
  lab_log "started ($((SECONDS - t0))s); '$0 env' prints the URIs"
}

stop() {
  need_root
  local h f pid
  for h in "${HOSTS[@]}"; do
    for f in sshd libvirtd virtlogd; do
      if alive "$DIR/$h/$f.pid"; then
        pid=$(cat "$DIR/$h/$f.pid")
        if [ "$(ip netns identify "$pid" 2>/dev/null)" = "$(ns "$h")" ]; then kill "$pid"; fi
      fi
    done
  done
  for h in "${HOSTS[@]}" ctl; do
    [ -e "/run/netns/$PREFIX-$h" ] || continue
    for _ in $(seq 1 25); do [ -z "$(ip netns pids "$PREFIX-$h")" ] && break; sleep 0.2; done
    for pid in $(ip netns pids "$PREFIX-$h"); do
      lab_log "killing leftover pid $pid in $PREFIX-$h: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns delete "$PREFIX-$h"
    lab_log "deleted namespace $PREFIX-$h"
  done
  rm -rf "$DIR"
  rmdir /run/sshd 2>/dev/null || true
  lab_log "stopped ($((SECONDS - t0))s)"
}

status() {
  local h ok=0
  for h in "${HOSTS[@]}"; do
    if alive "$DIR/$h/libvirtd.pid" && alive "$DIR/$h/sshd.pid" && answers "$h"; then
      lab_log "host $h: answers on $(virsh_uri "$h")"
    else
      lab_log "host $h: not running"; ok=1
    fi
  done
  return $ok
}

env_lines() {
  local h H
  for h in "${HOSTS[@]}"; do
    H=${h^^}
    echo "HOST_${H}_URI=$(provider_uri "$h")"
    echo "HOST_${H}_VIRSH_URI=$(virsh_uri "$h")"
    echo "HOST_${H}_UPLINK=${UPLINK[$h]}"
  done
  echo "HOSTS_CONTROLLER_NS=$CTL"
  echo "HOSTS_STATE=$DIR"
}

host_exec() {
  local h=$1; shift
  [ $# -gt 0 ] || { lab_log "usage: $0 exec a|b|ctl CMD..."; exit 2; }
  case "$h" in
    ctl) exec ip netns exec "$CTL" "$@" ;;
    a|b)
      alive "$DIR/$h/libvirtd.pid" || { lab_log "host $h is not running: '$0 start'"; exit 1; }
      exec nsenter -t "$(cat "$DIR/$h/libvirtd.pid")" -m -n "$@" ;;
    *) lab_log "no host '$h': a, b or ctl"; exit 2 ;;
  esac
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_lines ;;
  exec) shift; host_exec "${1:-}" "${@:2}" ;;
  *) echo "usage: $0 start|stop|status|env|exec a|b|ctl CMD..." >&2; exit 2 ;;
esac
