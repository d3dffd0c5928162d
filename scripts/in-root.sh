#!/usr/bin/env bash
# in-root.sh [--suite SUITE] CMD [ARGS...]: run CMD inside a Debian tree built
# by scripts/debian-root.sh (Debian 12 at $CACHE/rootfs by default; --suite
# trixie: $CACHE/rootfs-trixie), e.g. Debian's libreswan or cloud-init,
# without installing them on the host.
#
# How: a private mount namespace (unshare --mount --fork, so every mount
# vanishes when CMD exits) with an overlay whose upper layer is a tmpfs: CMD
# may write anywhere (logs, NSS db, ...) and the cached tree stays untouched,
# so the VM image built from it does not change.  /proc, /dev, /sys are
# mounted; these host directories are bind-mounted at the SAME path, so
# host paths given as arguments work unchanged:
#   - the current directory (CMD starts there),
#   - /tmp (pytest's tmp_path lives there),
#   - every directory in $IN_ROOT_BIND (colon-separated), for anything else.
# System directories (/, /usr, /etc, ...) are never bind-mounted over the
# tree's own: from such a cwd, CMD starts in / instead.
# Exit status, stdin, stdout and stderr are CMD's.  Needs root.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
CACHE=$LAB_CACHE
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=${2:?--suite needs a Debian suite name}; shift 2; fi
ROOT=$(lab_suite_dir rootfs "$SUITE")

if [ $# -eq 0 ]; then
  echo "usage: $0 [--suite SUITE] CMD [ARGS...]" >&2; exit 2
fi
if [ ! -x "$ROOT/bin/sh" ]; then
  echo "in-root: no tree at $ROOT: run scripts/debian-root.sh --suite $SUITE" >&2; exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "in-root: needs root (mount namespace, chroot)" >&2; exit 2; }

# The mount point only matters inside the private namespace; one fixed
# directory serves concurrent runs (each namespace mounts its own tmpfs).
MNT=$CACHE/in-root.mnt
mkdir -p "$MNT"

# Host dirs to expose, absolute and canonical.
binds=()
is_system_dir() {
  case "$1" in
    /|/bin|/bin/*|/sbin|/sbin/*|/lib|/lib/*|/lib64|/lib64/*|/usr|/usr/*|/etc|/etc/*|\
    /var|/var/lib|/var/lib/*|/var/log|/var/log/*|/var/cache|/var/cache/*|\
    /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*|/boot|/boot/*|/tmp) return 0 ;;
  esac
  return 1
}
cwd=$(pwd -P)
startdir=/
case "$cwd" in
  /tmp|/tmp/*) startdir=$cwd ;;                    # reachable via /tmp
  *) if ! is_system_dir "$cwd"; then binds+=("$cwd"); startdir=$cwd; fi ;;
esac
if [ -n "${IN_ROOT_BIND:-}" ]; then
  IFS=: read -r -a extra <<< "$IN_ROOT_BIND"
  for d in "${extra[@]}"; do
    [ -n "$d" ] || continue
    d=$(readlink -f "$d")
    [ -d "$d" ] || { echo "in-root: IN_ROOT_BIND: not a directory: $d" >&2; exit 2; }
    is_system_dir "$d" && { echo "in-root: refusing to bind system dir $d" >&2; exit 2; }
    binds+=("$d")
  done
fi

# Inner part, run by bash inside the new mount namespace.
inner='
set -euo pipefail
ROOT=$1 MNT=$2 startdir=$3; shift 3
nb=$1; shift
binds=("${@:1:$nb}"); shift "$nb"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 inroot "$MNT"
mkdir "$MNT/upper" "$MNT/work" "$MNT/m"
mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$MNT/upper,workdir=$MNT/work" "$MNT/m"
M=$MNT/m
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
mount --rbind /sys "$M/sys"
mount -t tmpfs -o mode=0755 run "$M/run"
mount --bind /tmp "$M/tmp"
for d in "${binds[@]}"; do
  mkdir -p "$M$d"
  mount --rbind "$d" "$M$d"
done
cd "$M"
exec chroot "$M" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
  /bin/sh -c '\''cd "$0" && exec "$@"'\'' "$startdir" "$@"
'
exec unshare --mount --fork -- bash -c "$inner" in-root \
  "$ROOT" "$MNT" "$startdir" "${#binds[@]}" "${binds[@]}" "$@"
