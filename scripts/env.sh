# Sourced by the other scripts: where the toolchain, the state and the secrets live.
# The cache is outside the checkout (a fresh clone reuses it); state and the
# secrets passphrase are per checkout, in the git-ignored .lab/.
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LAB_CACHE=${LAB_CACHE:-$HOME/.cache/gre-ipsec-lab}
export LAB_STATE=${LAB_STATE:-$LAB_ROOT/.lab}
export PULUMI_HOME=$LAB_CACHE/pulumi-home
export PATH=$LAB_CACHE/toolchain/bin:$LAB_ROOT/venv/bin:$PATH
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_SKIP_CONFIRMATIONS=true
export PULUMI_BACKEND_URL=file://$LAB_STATE/state
export PULUMI_CONFIG_PASSPHRASE_FILE=$LAB_STATE/passphrase
export LIBVIRT_DEFAULT_URI=qemu:///system

lab_log() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }

# The passphrase that encrypts this checkout's stack secrets: made once, never printed.
lab_passphrase() {
	mkdir -p "$LAB_STATE/state"
	if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
	fi
}
