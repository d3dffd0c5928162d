"""Recovery from an interrupted run: which libvirt objects are orphans, which processes are left over."""
from __future__ import annotations

import os
from pathlib import Path

from labctl import pending
from labctl.drills import interrupt

DEFAULT = "urn:pulumi:ci::lab::pulumi:providers:libvirt::default_0_5_4"
REMOTE = "urn:pulumi:ci::lab::pulumi:providers:libvirt::lab-host-b"


def resource(kind: str, name: str, provider: str = f"{DEFAULT}::1", **inputs: str) -> dict[str, object]:
    return {"urn": f"urn:pulumi:ci::lab::{kind}::{name}", "type": kind, "provider": provider,
            "inputs": {"name": name, **inputs}}


DOMAIN, VOLUME, SEED = ("libvirt:index/domain:Domain", "libvirt:index/volume:Volume",
                        "libvirt:index/cloudInitDisk:CloudInitDisk")
DEPLOYMENT = {
    "resources": [
        {"urn": DEFAULT, "id": "1", "type": "pulumi:providers:libvirt", "inputs": {}},
        {"urn": REMOTE, "id": "2", "type": "pulumi:providers:libvirt", "inputs": {"uri": "qemu+ssh://lab@b/system"}},
        resource(DOMAIN, "lab-ci-hub"),
        resource(VOLUME, "lab-ci-spoke3.qcow2", pool="lab-ci"),
    ],
    "pending_operations": [
        {"type": "creating", "resource": resource(SEED, "lab-ci-spoke3-cloudinit.iso", pool="lab-ci")},
        {"type": "creating", "resource": resource(DOMAIN, "lab-ci-spoke3", provider=f"{REMOTE}::2")},
        {"type": "creating", "resource": resource(VOLUME, "lab-ci-spoke3.qcow2", pool="lab-ci")},
        {"type": "updating", "resource": resource(DOMAIN, "lab-ci-hub")},
        {"type": "creating", "resource": resource("pulumi-python:dynamic:Resource", "lab-spoke3-tunnel-hub-side")},
    ],
}


def test_orphans_are_pending_libvirt_creates_the_state_does_not_own() -> None:
    assert pending.orphans(DEPLOYMENT) == [
        pending.Orphan("volume", "lab-ci-spoke3-cloudinit.iso", "lab-ci", ""),
        pending.Orphan("domain", "lab-ci-spoke3", "", "qemu+ssh://lab@b/system"),
    ]


def test_no_pending_operations_no_orphans() -> None:
    assert pending.orphans({"resources": DEPLOYMENT["resources"]}) == []
    assert pending.pending({"resources": []}) == []


def test_virsh_arguments_name_the_pool_of_a_volume() -> None:
    assert pending.Orphan("volume", "v.iso", "lab-ci").virsh_args("vol-delete") == ["vol-delete", "v.iso", "--pool",
                                                                                      "lab-ci"]
    assert pending.Orphan("domain", "lab-ci-spoke3").virsh_args("undefine") == ["undefine", "lab-ci-spoke3"]


def test_left_plugins_are_pulumi_plugins_of_this_checkout_whose_parent_is_gone() -> None:
    root = Path("/work/lab")
    found = [
        pending.Process(10, 1, "/cache/toolchain/bin/pulumi-language-python 127.0.0.1:1", "/work/lab"),
        pending.Process(11, 1, "/plugins/pulumi-resource-libvirt 127.0.0.1:1", "/work/lab/.lab/project"),
        pending.Process(12, 40, "/plugins/pulumi-resource-libvirt 127.0.0.1:2", "/work/lab"),  # a live run's
        pending.Process(13, 1, "/plugins/pulumi-resource-libvirt 127.0.0.1:3", "/work/lab2"),  # another checkout's
        pending.Process(14, 1, "/usr/sbin/dnsmasq --conf-file=x", "/work/lab"),
    ]
    assert [p.pid for p in pending.left_plugins(found, root)] == [10, 11]


def test_processes_reads_this_one() -> None:
    me = next(p for p in pending.processes() if p.pid == os.getpid())
    assert me.ppid == os.getppid() and "python" in me.command and me.cwd == os.getcwd()


def test_state_objects_are_grouped_by_the_host_of_their_provider() -> None:
    held = interrupt.state_objects(DEPLOYMENT)
    assert held == {"": {("domain", "lab-ci-hub"), ("volume", "lab-ci-spoke3.qcow2")}}


def test_a_kill_point_is_found_in_labctl_up_output() -> None:
    line = " +  libvirt:index:CloudInitDisk lab-spoke3-cloudinit creating (0s)"
    assert interrupt.resource_line("spoke3", "cloudinit", "creating") in line
    assert interrupt.resource_line("spoke3", "cloudinit", "created") not in line
    assert interrupt.resource_line("spoke13", "cloudinit", "creating") not in line


def test_the_recovery_summary_counts_the_plugins_ended() -> None:
    lines = ["ending pulumi-language-python (pid 1), left by an interrupted run",
             "ending pulumi-resource-libvirt (pid 2), left by an interrupted run",
             "removed domain lab-ci-spoke3, created by an interrupted run but not in the state",
             "stack ci: cleared 1 operation(s) an interrupted run left pending (lab-spoke3-domain)"]
    assert interrupt.recovery_summary(lines) == (
        "ended 2 plugin process(es) left running; removed domain lab-ci-spoke3, created by an interrupted run but "
        "not in the state; cleared 1 operation(s) an interrupted run left pending (lab-spoke3-domain)")
    assert interrupt.recovery_summary([]) == "nothing"
