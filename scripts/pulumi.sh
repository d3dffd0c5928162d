#!/usr/bin/env bash
# pulumi.sh STACK ARGS...: run the pulumi CLI on STACK inside the lab's network
# namespace, with the local backend and the stack's config file in .lab/stacks/
# (committed plain config + this checkout's secrets, see tools/labctl.py).
set -euo pipefail
. "$(dirname "$0")/env.sh"
stack=${1:?usage: pulumi.sh STACK ARGS...}
shift
lab_passphrase
config_file=$LAB_STATE/stacks/Pulumi.$stack.yaml
[ -f "$config_file" ] || { lab_log "no $config_file: run venv/bin/python tools/labctl.py stack-config $stack"; exit 2; }
cd "$LAB_ROOT"
# Only these commands read stack config, and only they accept --config-file.
case "${1:-}" in
	up | preview | destroy | refresh | config) set -- "$@" --config-file "$config_file" ;;
esac
exec "$LAB_ROOT/scripts/labns.sh" exec pulumi --non-interactive "$@" --stack "$stack"
