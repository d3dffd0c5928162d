"""The ci lab of the end-to-end test (tests/e2e/test_lab.py): its stack, its commands (pulumi and
labctl as a user runs them), its nodes and what the tests read from them, and the diagnostics printed
on failure. Kept apart so the test module holds the tests only."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from lablib import names
from lablib.config import INTERFACE_MODES
from labctl import checks
from labctl import stack as stacks
from labctl.drills import DrillReport, drift, fragments, recovery, remedies
from labctl.node import Node, diagnostics, tunnel_up, wait_until

ROOT = Path(__file__).resolve().parents[2]
STACK = "ci"
PREFIX = names.stack_prefix(STACK)
# Bounds on every wait, so that a hang fails with diagnostics instead of running into CI's limit.
TUNNEL_TIMEOUT = 900
PULUMI_TIMEOUT = 900
LABCTL_TIMEOUT = 600
# A mixed fleet: the hub on the Debian 13 image (libreswan 5.x), the spokes on Debian 12 (4.10),
# as the hub* keys let users mix them; spoke2 (routed) is a VTI spoke, spoke1 (NAT) and the hub keep
# the stack's interfaceMode (xfrm).
HUB_SUITE = "trixie"
LIBRESWAN = {"bookworm": "4.10", "trixie": "5.2"}
MODES = {"hub": "xfrm", "spoke1": "xfrm", "spoke2": "vti", "spoke3": "xfrm", "spoke4": "xfrm"}
SPOKES = len(MODES) - 1


def pulumi(*args: str, check: bool = True, echo: bool = True) -> subprocess.CompletedProcess[str]:
    """Run pulumi on the ci stack, copying its output into the test log unless echo is off
    (it must be off for anything that prints a secret)."""
    print(f"$ pulumi {' '.join(args)}", flush=True)
    try:
        result = subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), STACK, *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=PULUMI_TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        output = expired.output.decode(errors="replace") if isinstance(expired.output, bytes) else expired.output
        print((output or "")[-6000:] if echo else "", flush=True)
        raise AssertionError(f"pulumi {' '.join(args)} did not finish within {PULUMI_TIMEOUT} s") from None
    if echo:
        print(result.stdout[-6000:], flush=True)
    if check and result.returncode != 0:
        raise AssertionError(f"pulumi {' '.join(args)} exited {result.returncode}")
    return result


def labctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The lab's command-line program, as a user runs it."""
    print(f"$ labctl {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=LABCTL_TIMEOUT)


def nodes() -> dict[str, Node]:
    return stacks.load(STACK).nodes()


def explain(lab_nodes: dict[str, Node]) -> str:
    return "\n".join(diagnostics(node, names.domain_name(STACK, node.name)) for node in lab_nodes.values())


@dataclass
class Lab:
    nodes: dict[str, Node]
    figures: dict[str, object]


def configure(spokes: int) -> None:
    vti = [n for n in range(1, spokes + 1) if MODES[names.spoke_name(n)] == "vti"]
    stacks.write_stack_config(STACK, (f"domainType={domain_type()}", f"spokes={spokes}", f"vtiSpokes={vti}",
                                      *hub_boot(HUB_SUITE)), None)


def hub_boot(suite: str) -> tuple[str, ...]:
    """The hub* overrides that boot the hub from the lab image of another Debian suite, with the
    kernel the committed stack boots (the lab's own: the tcp spoke needs ESP in TCP on the hub too)."""
    if suite == names.DEFAULT_SUITE:
        return ()
    committed = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]
    image_dir = names.suite_dir("image", suite)
    images = sorted(image_dir.glob("debian*-lab.qcow2"))
    assert images, f"no lab image in {image_dir}: run `scripts/build-image.sh --suite {suite}` (make deps does)"
    return (f"hubImage={images[0]}", f"hubKernel={committed['lab:kernel']}",
            f"hubKernelCmdline={committed['lab:kernelCmdline']}")


def domain_type() -> str:
    return subprocess.run([str(ROOT / "scripts" / "detect-domain-type.sh")], check=True,
                          capture_output=True, text=True).stdout.strip()


def wait_for_tunnels(lab_nodes: dict[str, Node]) -> float:
    spokes = [n for name, n in lab_nodes.items() if name != names.HUB]
    try:
        return wait_until("all spoke tunnels", lambda: all(tunnel_up(n, checks.spoke_conn(n.name)) for n in spokes),
                          TUNNEL_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"tunnels not up after {TUNNEL_TIMEOUT} s\n{explain(lab_nodes)}")


def boot_to_final_seconds(node: Node) -> float:
    """Seconds from kernel start to the first-boot payload's end, read in the guest: lab-seed's
    process exit or cloud-init's final unit, whichever ran (systemd's monotonic clock)."""
    out = node.run(f"systemctl show -p ExecMainExitTimestampMonotonic --value {names.SEED_UNIT};"
                   " systemctl show -p ActiveEnterTimestampMonotonic --value cloud-final.service")
    return max(int(value) for value in out.split()) / 1e6


def stop_stray_pulumi() -> None:
    """A test stopped by its timeout leaves its pulumi child running and holding the stack's lock,
    and every later test would fail on that lock: interrupt it (twice: the second Ctrl-C does not
    wait for the providers), then kill what is left."""
    strays = {int(pid) for pid in subprocess.run(["pgrep", "-x", "-P", str(os.getpid()), "pulumi"],
                                                 capture_output=True, text=True).stdout.split()}
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
        for pid in strays:
            print(f"stopping stray pulumi {pid} with {sig.name}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 20
        while strays and time.monotonic() < deadline:
            strays = {pid for pid in strays if not exited(pid)}
            time.sleep(1)


def exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) != (0, 0)
    except ChildProcessError:  # reaped already
        return True


def tunnel_devices(node: Node) -> dict[str, str]:
    """The node's route-based tunnel devices: name -> kind (xfrm or vti)."""
    found = {}
    for line in node.run("ip -d -o link show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        kind = next((mode for mode in INTERFACE_MODES if f" {mode} " in line), None)  # `ip -d` names it so
        if name.startswith("ipsec") and kind:
            found[name] = kind
    return found


def ping_replies(stdout: str) -> dict[str, tuple[str, dict[str, object]]]:
    """`ansible all -m ping`'s default output, `NAME | STATUS => {json}` per host: name -> (status, json)."""
    parts = re.split(r"^(\S+) \| (\S+)(?: \| rc=-?\d+)? => ", stdout, flags=re.MULTILINE)
    return {name: (status, json.loads(reply)) for name, status, reply in zip(parts[1::3], parts[2::3], parts[3::3])}


def drill(name: str, site: str | tuple[str, ...] | None) -> Callable[[], DrillReport]:
    """The drill as `labctl drill NAME --site SITE` runs it (reboot: a --site each), on its own LabStack."""
    def run() -> DrillReport:
        lab_stack = stacks.load(STACK)
        start = time.monotonic()
        if name == "fragments":
            report = fragments.run(lab_stack, site, drop_pct=30, count=200, size=1400, echo=print)
        elif name == "remedies":
            report = remedies.run(lab_stack, drop_pct=30, count=200, size=1400, light_loss_pct=1, echo=print)
        elif name == "drift":
            report = drift.run(lab_stack, site, echo=print)
        else:
            report = getattr(recovery, name)(lab_stack, site, echo=print)
        report.figures["seconds"] = round(time.monotonic() - start)
        return report
    return run


def pki_secrets() -> list[str]:
    """The lab PKI's private keys (a line of each PEM) and PKCS#12 bundles, from the decrypted state."""
    def plain(value: object) -> str:
        """A value of the decrypted export: a secret is {<sig>: ..., "plaintext": JSON}."""
        return json.loads(value["plaintext"]) if isinstance(value, dict) else str(value or "")
    state = json.loads(pulumi("stack", "export", "--show-secrets", echo=False).stdout)
    found = []
    for resource in state["deployment"]["resources"]:
        outputs = {key: plain(value) for key, value in (resource.get("outputs") or {}).items()
                   if key in ("keyPem", "caKeyPem", "p12")}
        found += [outputs[key].splitlines()[1] for key in ("keyPem", "caKeyPem") if outputs.get(key)]
        found += [outputs["p12"][:64]] if outputs.get("p12") else []
    return found


def hub_side_state(spoke: str) -> dict[str, object]:
    """The outputs of spoke's hub side in the stack's state (upScript is plain; files stay secret)."""
    resources = stacks.open_stack(STACK).export_stack().deployment["resources"]
    (side,) = [r for r in resources if r["urn"].endswith(f"::{names.PROGRAM_ROOT}-{spoke}-tunnel-hub-side")]
    return side["outputs"]


def pool_dir() -> Path:
    return Path(names.pool_dir(str(stacks.plain_config(STACK)["poolPath"]), STACK))


def clear_leftovers() -> None:
    """Volume files of a run killed before its teardown (labns.sh stop keeps files) would make
    `pulumi up` fail with "volume exists": the ci stack is this test's own, so remove them."""
    in_state = pulumi("stack", "export", echo=False).stdout.count('"urn:')
    if not in_state and pool_dir().exists():
        print(f"removing leftovers of an earlier run: {sorted(p.name for p in pool_dir().iterdir())}")
        shutil.rmtree(pool_dir())


def disk_usage() -> dict[str, float]:
    """MiB actually used by the base image and each VM's linked clone."""
    pool = pool_dir()
    usage = {}
    for path in sorted(pool.glob("*.qcow2")):
        kib = subprocess.run(["du", "-k", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
        usage[path.name] = round(int(kib) / 1024, 1)
    return usage
