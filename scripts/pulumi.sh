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
# A preview writes no state (the engine discards its snapshot), yet by default the
# engine serialises and checks the whole snapshot after every step: quadratic in
# the resources, most of a 250-spoke preview's time. Save it once at the end instead.
# (`up` keeps its checkpoints: a crash mid-update must not lose what was created.)
if [ "${1:-}" = preview ]; then
	export PULUMI_SKIP_CHECKPOINTS=true
fi
exec "$LAB_ROOT/scripts/labns.sh" exec pulumi --non-interactive --cwd "$LAB_STATE/project" "$@" --stack "$stack"
