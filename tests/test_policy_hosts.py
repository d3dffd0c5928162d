"""The policy pack on a lab spread over several libvirt hosts: capacity and networks per host."""
from __future__ import annotations

import json

import pulumi_policy
import pytest

from harness import Recorded
from policy_harness import evaluate, lab_policies, mandatory, named, planned, urn
from test_policies import TWO


def _on_hosts(resources: list[Recorded], hosts: list[str]) -> list[pulumi_policy.PolicyResource]:
    """The ci plan's domains as the engine sends them with one explicit provider per host (in turn)."""
    domains = [r for r in resources if r.typ == "libvirt:index/domain:Domain"]
    stack = []
    for index, r in enumerate(domains):
        uri = hosts[index % len(hosts)]
        provider = pulumi_policy.PolicyProviderResource(
            "pulumi:providers:libvirt", {"uri": uri}, f"urn:pulumi:ci::lab::pulumi:providers:libvirt::{uri}", uri)
        stack.append(pulumi_policy.PolicyResource(r.typ, r.inputs, urn("ci", r), r.name, None, provider, None, [], {}))
    return stack


@pytest.mark.parametrize("hosts, violations", [
    (["qemu:///system"], 2),  # 3 VMs x 256 MiB on one host: over 512 MiB and 2 vCPUs
    (["qemu:///system", "qemu+ssh://root@192.0.2.2/system"], 0),  # 2 + 1 VMs: each host within both
])
def test_capacity_is_judged_per_host(hosts: list[str], violations: int) -> None:
    found: list[str] = []
    args = pulumi_policy.StackValidationArgs(_on_hosts(planned("ci", **TWO), hosts), {"maxMemoryMib": 512.0, "maxVcpus": 2.0})
    lab_policies.plumbing.forget_recorded_inputs()
    lab_policies.capacity.check_capacity(args, lambda message, urn_=None: found.append(message))
    assert len(found) == violations
    assert all(message.startswith("host qemu:///system's 3 VMs need") for message in found)


def test_capacity_names_the_host_by_uri_else_by_provider_name() -> None:
    host_of, typ = lab_policies.capacity.host_of, "pulumi:providers:libvirt"
    assert host_of(None) == lab_policies.capacity.DEFAULT_HOST
    default = pulumi_policy.PolicyProviderResource(typ, {}, f"urn:pulumi:s::lab::{typ}::default_0_5_4", "default_0_5_4")
    assert host_of(default) == lab_policies.capacity.DEFAULT_HOST
    # A uri not set (the provider then takes LIBVIRT_DEFAULT_URI): the provider's own name.
    empty = pulumi_policy.PolicyProviderResource(typ, {"uri": "", "version": "0.5.4"},
                                                 f"urn:pulumi:s::lab::{typ}::b", "b")
    assert host_of(empty) == "b"


def test_a_two_host_plan_has_no_mandatory_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each host's management network has the same (isolated) subnet: not an overlap; every WAN
    subnet is still distinct across hosts, and capacity is judged per host."""
    two = json.dumps([{"name": "a", "uri": "qemu:///system", "uplink": "172.31.0.1"},
                      {"name": "b", "uri": "qemu+ssh://root@172.31.0.2/system", "uplink": "172.31.0.2"}])
    monkeypatch.setattr("lablib.hostcheck.check_logins", lambda hosts: None)  # no host to dial here
    resources = planned("ci", hosts=two, **TWO)
    assert len([r for r in resources if r.name.startswith("lab-networks-mgmt-")]) == 2
    found = evaluate(resources, "ci", {"capacity-budget": {"maxMemoryMib": 512.0, "maxVcpus": 2.0}})
    assert [v for v in found if v.level == "mandatory"] == []
    assert [v.message.split(" need")[0] for v in found if v.policy == "capacity-budget"] == []
    # A WAN subnet used twice is an overlap, even on two hosts (their WANs are routed to each other).
    b_wan = named(resources, "lab-networks-wan-spoke1")
    b_wan.inputs["addresses"] = named(resources, "lab-networks-wan-hub").inputs["addresses"]
    assert "lab-subnets-distinct" in mandatory(evaluate(resources, "ci"))
