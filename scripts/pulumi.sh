#!/usr/bin/env bash
# pulumi.sh STACK ARGS...: run the pulumi CLI on STACK inside the lab's network
# namespace, with the local backend, from the run project in .lab/project/
# whose stack files hold the committed config plus this checkout's secrets
# (written by `venv/bin/python -m labctl stack-config STACK`).
set -euo pipefail
. "$(dirname "$0")/env.sh"
stack=${1:?usage: pulumi.sh STACK ARGS...}
shift
lab_passphrase
if [ ! -f "$LAB_STATE/project/Pulumi.$stack.yaml" ]; then
	lab_log "no stack config for $stack: run venv/bin/python -m labctl stack-config $stack"
	exit 2
fi
exec "$LAB_ROOT/scripts/labns.sh" exec pulumi --non-interactive --cwd "$LAB_STATE/project" "$@" --stack "$stack"
