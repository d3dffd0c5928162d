"""labctl: the lab's helper commands around `pulumi` (stack config, waiting, diagnostics).

    venv/bin/python tools/labctl.py stack-config ci --set domainType=qemu
    venv/bin/python tools/labctl.py wait ci --timeout 1200
    venv/bin/python tools/labctl.py diagnose ci
"""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.probe import Node, diagnostics, established_conns, wait_until  # noqa: E402

STATE = ROOT / ".lab"
SSH_KEY = STATE / "ssh" / "id_ed25519"
PULUMI = [str(ROOT / "scripts" / "pulumi.sh")]


def pulumi(stack: str, *args: str, stdin: str | None = None, capture: bool = True) -> str:
    result = subprocess.run([*PULUMI, stack, *args], input=stdin, text=True,
                            capture_output=capture, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"pulumi {' '.join(args)} failed: {(result.stderr or '').strip()}")
    return result.stdout or ""


def ssh_key() -> Path:
    """This checkout's lab SSH key pair, made once (git-ignored, mode 0600)."""
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        SSH_KEY.touch(mode=0o600)
        SSH_KEY.write_bytes(private)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        SSH_KEY.with_suffix(".pub").write_text(public.decode() + " lab\n")
    return SSH_KEY


@click.group()
def cli() -> None:
    """Helpers for the GRE-over-IPsec lab (see README)."""


@cli.command("stack-config")
@click.argument("stack")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Plain config to override.")
def stack_config(stack: str, overrides: tuple[str, ...]) -> None:
    """Write .lab/stacks/Pulumi.STACK.yaml: stacks/Pulumi.STACK.yaml + this checkout's secrets."""
    committed = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    if not committed.exists():
        known = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
        raise click.BadParameter(f"no stacks/Pulumi.{stack}.yaml; stacks: {', '.join(known)}", param_hint="STACK")
    generated = STATE / "stacks" / f"Pulumi.{stack}.yaml"
    existing = yaml.safe_load(generated.read_text()) if generated.exists() else {}
    config = dict(yaml.safe_load(committed.read_text())["config"])
    # Keep the encrypted values and the salt they were encrypted with.
    config.update({k: v for k, v in (existing.get("config") or {}).items() if isinstance(v, dict) and "secure" in v})
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{override!r} is not KEY=VALUE", param_hint="--set")
        config[f"lab:{key}"] = yaml.safe_load(value)
    key_file = ssh_key()
    config["lab:sshPublicKey"] = key_file.with_suffix(".pub").read_text().strip()
    generated.parent.mkdir(parents=True, exist_ok=True)
    document = {k: v for k, v in existing.items() if k != "config"}
    generated.write_text(yaml.safe_dump({**document, "config": config}, sort_keys=False))
    pulumi(stack, "stack", "select", "--create")
    if "lab:masterSecret" not in config:
        pulumi(stack, "config", "set", "--secret", "lab:masterSecret", stdin=secrets.token_urlsafe(32))
    if "lab:sshPrivateKey" not in config:
        pulumi(stack, "config", "set", "--secret", "lab:sshPrivateKey", stdin=key_file.read_text())
    click.echo(generated)


def stack_nodes(stack: str) -> dict[str, dict[str, object]]:
    return json.loads(pulumi(stack, "stack", "output", "nodes", "--json"))


def lab_nodes(stack: str) -> dict[str, Node]:
    return {name: Node(name, str(info["mgmtAddress"]), ssh_key()) for name, info in stack_nodes(stack).items()}


@cli.command()
@click.argument("stack")
@click.option("--timeout", default=1200, show_default=True, help="Seconds to wait for all tunnels.")
def wait(stack: str, timeout: int) -> None:
    """Wait until every spoke's tunnel to the hub is established; print how to reach each node."""
    start = time.monotonic()
    nodes = lab_nodes(stack)
    spokes = [node for name, node in nodes.items() if name != "hub"]
    pending = {node.name for node in spokes}

    def all_up() -> bool:
        for node in spokes:
            if node.name in pending and node.reachable() and f"{node.name}-hub" in established_conns(node):
                pending.discard(node.name)
                click.echo(f"  {node.name}: tunnel to hub established ({time.monotonic() - start:.0f} s)")
        return not pending

    try:
        wait_until(f"tunnels of {', '.join(sorted(pending))}", all_up, timeout, progress=click.echo)
    except TimeoutError as error:
        for node in nodes.values():
            click.echo(diagnostics(node, f"lab-{stack}-{node.name}"), err=True)
        raise click.ClickException(str(error)) from None
    click.echo(f"all {len(spokes)} tunnels up after {time.monotonic() - start:.0f} s")
    for name, info in stack_nodes(stack).items():
        click.echo(f"  {name:8} ssh -i {SSH_KEY} lab@{info['mgmtAddress']}   (WAN {info['wanAddress']}, "
                   f"overlay {info['overlayAddress']}, tunnel MTU {info['tunnelMtu']})")
    click.echo(f"  (run ssh inside the lab namespace: scripts/labns.sh exec ssh ...)")


@cli.command()
@click.argument("stack")
def diagnose(stack: str) -> None:
    """Print console tails, IPsec and OVS state of every node."""
    for node in lab_nodes(stack).values():
        click.echo(diagnostics(node, f"lab-{stack}-{node.name}"))


if __name__ == "__main__":
    cli()
