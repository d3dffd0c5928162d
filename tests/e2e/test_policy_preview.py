"""The policy pack under the real engine: `pulumi preview --policy-pack policy`.

Every committed stack passes; a deliberately bad stack and stricter pack
config fail with the expected policy names. Runs inside the lab namespace
(the libvirt provider connects to the daemon even to preview). Each committed
stack is previewed as a stack of its own, `policy-NAME`, removed afterwards:
`make test` runs the one-host lab on the `ci` stack at the same time, and its
config and state are that test's alone.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
BAD = Path(__file__).resolve().parent / "policy"


def stack_config(stack: str, *extra: str) -> None:
    subprocess.run([str(ROOT / "venv" / "bin" / "python"), "-m", "labctl", "stack-config",
                    stack, *extra], check=True, capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def committed() -> Iterator[Callable[[str], str]]:
    """committed(NAME): the run project's stack `policy-NAME`, configured from stacks/Pulumi.NAME.yaml."""
    made: list[str] = []

    def configure(name: str) -> str:
        stack = f"policy-{name}"
        stack_config(stack, "--from", str(ROOT / "stacks" / f"Pulumi.{name}.yaml"))
        made.append(stack)
        return stack
    yield configure
    for stack in made:
        subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), stack, "stack", "rm", "--yes"], check=True,
                       capture_output=True)


def preview(stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), stack, "preview",
                             "--policy-pack", str(ROOT / "policy"), *extra],
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(result.stdout[-4000:])
    return result


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_passes_the_pack(stack: str, committed: Callable[[str], str]) -> None:
    result = preview(committed(stack))
    assert result.returncode == 0, f"{stack} failed the policy pack"
    assert "mandatory" not in result.stdout


def test_production_stack_on_qemu_fails_with_the_kvm_policy() -> None:
    stack_config("production", "--from", str(BAD / "Pulumi.production.yaml"))
    result = preview("production")
    assert result.returncode != 0
    assert "production-needs-kvm" in result.stdout and "mandatory" in result.stdout


def test_stricter_pack_config_fails_keys_and_mtu(committed: Callable[[str], str]) -> None:
    result = preview(committed("ci"), "--policy-pack-config", str(BAD / "strict.json"))
    assert result.returncode != 0
    assert "ipsec-keys-secret-and-long" in result.stdout
    assert "mtu-esp-never-fragments" in result.stdout
