"""The lab's waits for booting VMs grow with the VMs per core (lablib.waits), the hub push's included,
and an existing stack's plan changes in nothing but the hub push's wait, which no diff compares."""
from __future__ import annotations

from typing import Any

import pytest

from harness import SECRET_SIG, Run, run_program, stack_values
from lablib import waits
from providers.remote_config import RemoteConfigProvider

HUB_SIDE = "pulumi-python:dynamic:Resource"


def test_labs_of_as_many_vms_as_the_ci_lab_keep_the_fixed_waits() -> None:
    for domain_type in ("qemu", "kvm"):
        assert waits.scaled_wait(waits.HUB_READY_SECONDS, 3, domain_type, 2) == 900
        assert waits.scaled_wait(waits.TUNNELS_SECONDS, 3, domain_type, 2) == 1200


def test_the_hub_push_waits_twice_a_boot_shared_by_every_vm_of_a_large_lab() -> None:
    """16 spokes and the hub on 2 cores: each boot takes T1 x 17 / 2, 1000-1900 s at T1 = 220-270 s."""
    assert waits.scaled_wait(waits.HUB_READY_SECONDS, 17, "qemu", 2) == 2 * 240 * 17 // 2 == 4080
    assert waits.scaled_wait(waits.HUB_READY_SECONDS, 9, "qemu", 2) == 2160  # 8 spokes
    for spokes in (8, 16):
        assert waits.scaled_wait(waits.HUB_READY_SECONDS, spokes + 1, "qemu", 2) > 270 * (spokes + 1) / 2


@pytest.mark.parametrize("fixed", [waits.HUB_READY_SECONDS, waits.TUNNELS_SECONDS])
def test_waits_grow_with_vms_and_shrink_with_cores_never_below_the_fixed_one(fixed: int) -> None:
    by_vms = [waits.scaled_wait(fixed, vms, "qemu", 2) for vms in range(1, 252)]
    assert by_vms == sorted(by_vms) and by_vms[0] == fixed and by_vms[-1] > fixed
    by_cores = [waits.scaled_wait(fixed, 17, "qemu", cores) for cores in (1, 2, 4, 8, 16, 64)]
    assert by_cores == sorted(by_cores, reverse=True) and by_cores[-1] == fixed
    assert waits.scaled_wait(fixed, 60, "kvm", 2) < waits.scaled_wait(fixed, 60, "qemu", 2)


def test_an_unknown_domain_type_boots_as_slowly_as_emulation() -> None:
    assert waits.boot_seconds("xen") == waits.boot_seconds("qemu") > waits.boot_seconds("kvm")


def plan(monkeypatch: pytest.MonkeyPatch, cores: int, values: dict[str, str]) -> Run:
    monkeypatch.setattr(waits, "machine_cores", lambda: cores)
    return run_program(values)


def props(run: Run, without: tuple[str, ...] = ()) -> list[tuple[str, str, dict[str, Any]]]:
    """Every resource's type, name and inputs (secrets unwrapped), leaving out the keys in `without`;
    by name (the program registers them as their inputs resolve)."""
    def plain(value: Any) -> Any:
        return value["value"] if isinstance(value, dict) and SECRET_SIG in value else value
    return sorted((r.typ, r.name, {k: plain(v) for k, v in r.inputs.items() if k not in without})
                  for r in run.resources)


def test_a_lab_planned_for_other_cores_differs_only_in_the_hub_pushs_wait_which_updates_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-spoke ci lab made on 64 cores (fixed waits), planned again on 2: the same resources and
    props but readyTimeout, and the provider's diff sees no change, so no hub side is updated."""
    # Pre-shared keys: a certificate lab makes new keys in every run, which no wait is about.
    values = stack_values({"spokes": 16, "auth": "psk"}, stack="ci")  # once: each call writes the SSH key anew
    before, after = plan(monkeypatch, 64, values), plan(monkeypatch, 2, values)
    assert props(before, ("readyTimeout",)) == props(after, ("readyTimeout",))
    olds, news = ({r.name: r.inputs for r in run.of_type(HUB_SIDE)} for run in (before, after))
    assert {p["readyTimeout"] for p in olds.values()} == {900}
    assert {p["readyTimeout"] for p in news.values()} == {waits.scaled_wait(900, 17, "qemu", 2)} == {4080}
    diff = RemoteConfigProvider().diff
    assert len(olds) == 16 and not any(diff("id", olds[name], news[name]).changes for name in olds)


def test_the_ci_lab_on_two_cores_plans_exactly_what_its_state_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ci stack as it runs (5 VMs, 2 cores): four spokes' hub sides and the PKI's push to the hub,
    each waiting the 900 s scaled for 5 VMs on 2 cores."""
    pushes = [r for r in plan(monkeypatch, 2, stack_values(stack="ci")).of_type(HUB_SIDE) if "readyTimeout" in r.inputs]
    assert len(pushes) == 5 and {r.inputs["readyTimeout"] for r in pushes} == {waits.scaled_wait(900, 5, "qemu", 2)}
