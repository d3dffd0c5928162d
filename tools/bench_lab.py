"""The lab helpers the benchmark drives, imported in one place (re-point here when the CLI moves):
configure a stack, bring it up with its engine events, and time its tunnels."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

import click
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from labctl.cli import stack_config  # noqa: E402
from labctl.node import Node, established_conns, payload_done, wait_until  # noqa: E402
from labctl.stack import ssh_key  # noqa: E402
from lablib import names  # noqa: E402
from lablib.boot import with_cloud_init  # noqa: E402
from tools.mockrun import stack_values  # noqa: E402

__all__ = ["ROOT", "LAB_STACK", "names", "stack_values", "lab_nodes", "pulumi", "stack_config",
           "stack_nodes", "Node", "payload_done", "established_conns", "wait_until", "configure", "timed",
           "up_with_events", "cloud_init_boot", "packaged_kernel_boot", "create_spans", "create_times",
           "wait_tunnels", "domain_type", "config_int"]

LAB_STACK = "ci"  # the stack the lab and scale steps bring up and destroy
# ...with the computed MTU on every spoke and lab:wanMtu on every WAN: the bench measures what the lab
# itself costs, as it did before the ci stack gave each spoke a remedy of its own (docs/remedies.md).
COMPUTED_EVERYWHERE = {"asDeployedSpokes": [], "kernelGreSpokes": [], "tcpSpokes": [], "spokeWans": {}}


def pulumi(stack: str, *args: str) -> str:
    """The pulumi CLI on stack (scripts/pulumi.sh: the run project, local backend, namespace)."""
    result = subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), stack, *args], text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        # A --json run's errors are in its events; its stderr may hold only a warning (lab:initrd unset).
        why = json_errors(result.stdout) or result.stderr.strip() or result.stdout.strip()[-2000:]
        raise click.ClickException(f"pulumi {' '.join(args)} failed: {why}")
    return result.stdout


def json_errors(output: str) -> str:
    """The error diagnostics of a `--json` run's event stream (one JSON event per line; its stderr
    is empty then), one per resource: a 16-spoke run failed and said only "failed:"."""
    errors = []
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        diagnostic = event.get("diagnosticEvent") if isinstance(event, dict) else None
        if isinstance(diagnostic, dict) and diagnostic.get("severity") == "error":
            resource = str(diagnostic.get("urn") or "stack").rsplit("::", 1)[-1]
            errors.append(f"{resource}: {' '.join(str(diagnostic.get('message', '')).split())}")
    return "; ".join(errors)


def stack_nodes(stack: str) -> dict[str, dict[str, object]]:
    return json.loads(pulumi(stack, "stack", "output", "nodes", "--json"))


def lab_nodes(stack: str) -> dict[str, Node]:
    return {name: Node(name, str(info["mgmtAddress"]), ssh_key()) for name, info in stack_nodes(stack).items()}


def image_overrides(suite: str) -> list[str]:
    """The committed stacks name the default cache; the bench follows $LAB_CACHE, and boots every
    VM from the lab image of `suite` (scripts/build-image.sh --suite) on the lab's own kernel, as
    the ci, local and scale stacks do (no initrd: every driver is built in)."""
    image = names.suite_dir("image", suite)
    disks = sorted(image.glob("debian*-lab.qcow2"))
    if not disks:
        raise click.ClickException(f"no lab image in {image}: run `scripts/build-image.sh --suite {suite}`")
    return [f"image={disks[0]}", f"kernel={names.LAB_KERNEL}", "initrd="]


def packaged_kernel_boot(suite: str) -> list[str]:
    """--set values that boot every VM on the suite's packaged kernel and its initrd (Debian's cloud
    kernel, kept in the image's folder), as the two-hosts example does."""
    image = names.suite_dir("image", suite)
    return [f"kernel={image / 'vmlinuz'}", f"initrd={image / 'initrd.img'}"]


def cloud_init_boot() -> list[str]:
    """--set values that boot every VM of the ci stack with cloud-init: its committed kernel command
    line without names.CLOUD_INIT_OFF."""
    committed = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{LAB_STACK}.yaml").read_text())["config"]
    return [f"kernelCmdline={with_cloud_init(committed['lab:kernelCmdline'])}"]


def configure(stack: str, sets: tuple[str, ...] = (), suite: str = names.DEFAULT_SUITE, **values: object) -> None:
    """The run stack file of `stack`: the suite's image, COMPUTED_EVERYWHERE, then sets and values."""
    values = {**COMPUTED_EVERYWHERE, **values}
    sets = (*image_overrides(suite), *sets, *(f"{k}={json.dumps(v)}" for k, v in values.items()))
    args = [stack] + [item for pair in (("--set", s) for s in sets) for item in pair]
    stack_config.main(args, standalone_mode=False)


def timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return round(time.monotonic() - start, 1)


def up_with_events(stack: str, event_log: Path) -> float:
    """`pulumi up`; its engine events (`--json` streams one per line) go to event_log."""
    start = time.monotonic()
    event_log.write_text(pulumi(stack, "up", "--yes", "--skip-preview", "--json"))
    return round(time.monotonic() - start, 1)


def create_spans(event_log: Path) -> dict[str, tuple[str, int, int]]:
    """Per created resource URN: (short type, start, end) in the engine's epoch seconds."""
    started: dict[str, int] = {}
    spans: dict[str, tuple[str, int, int]] = {}
    for line in event_log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        for kind in ("resourcePreEvent", "resOutputsEvent"):
            meta = (event.get(kind) or {}).get("metadata") or {}
            if meta.get("op") != "create":
                continue
            if kind == "resourcePreEvent":
                started[meta["urn"]] = event["timestamp"]
            elif meta["urn"] in started:
                spans[meta["urn"]] = (meta["type"].split(":")[-1], started[meta["urn"]], event["timestamp"])
    return spans


def create_times(event_log: Path) -> dict[str, dict[str, float]]:
    """Per resource type: how many were created and the longest create (engine event log)."""
    per_type: dict[str, list[int]] = {}
    for short, start, end in create_spans(event_log).values():
        per_type.setdefault(short, []).append(end - start)
    return {t: {"count": len(d), "longest_seconds": max(d)} for t, d in sorted(per_type.items())}


def wait_tunnels(stack: str, spokes: list[str], start: float, timeout: float,
                 interval: float = 2) -> dict[str, float]:
    """Seconds from start until each spoke's child SA to the hub is up. Each spoke is polled every
    `interval` s on a thread of its own, over its own connection: one after the other, a round over
    16 booting spokes (each SSH attempt waiting on an address not yet up) outlasts the resolution."""
    nodes = lab_nodes(stack)

    def tunnel_up(spoke: str) -> float:
        node, conn = nodes[spoke], names.conn_name(spoke, names.HUB)
        try:
            wait_until(f"{spoke}'s tunnel", lambda: conn in established_conns(node), timeout, interval=interval,
                       progress=lambda _: None)
            return round(time.monotonic() - start, 1)
        finally:
            node.close()

    with ThreadPoolExecutor(max_workers=len(spokes)) as pool:
        futures = {pool.submit(tunnel_up, spoke): spoke for spoke in spokes}
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=60)
            if pending:
                click.echo(f"  still waiting for the tunnels of {', '.join(sorted(futures[f] for f in pending))} "
                           f"({time.monotonic() - start:.0f} s)")
        return {spoke: future.result() for future, spoke in futures.items()}


def domain_type() -> str:
    return subprocess.run([str(ROOT / "scripts" / "detect-domain-type.sh")], check=True,
                          capture_output=True, text=True).stdout.strip()


def config_int(stack: str, key: str) -> int:
    return int(pulumi(stack, "config", "get", f"lab:{key}").strip())
