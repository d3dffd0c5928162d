"""`drill drift`: a spoke's VM is destroyed and undefined behind Pulumi's back.

`pulumi refresh` (one resource at a time, see below) notices the domain is gone
and `pulumi up` recreates it and nothing else (its disk and cloud-init ISO are still there, so it boots as
after a power cut); then its tunnel must come back by itself.
"""
from __future__ import annotations

import time

from labctl import host
from labctl.drills import (DrillReport, Echo, boot_bound, overlay_flows, pick_spoke, require_healthy, settle_seconds,
                           time_recovery)
from labctl.stack import LabStack, open_stack

DOMAIN_TYPE = "libvirt:index/domain:Domain"


def run(lab: LabStack, site: str | None, echo: Echo) -> DrillReport:
    spoke = pick_spoke(lab, site)
    require_healthy(lab)
    report = DrillReport("drift")
    domain = lab.domain(spoke)
    echo(f"destroying and undefining {domain} behind Pulumi's back")
    on = lab.host_uri(spoke)
    host.virsh("destroy", domain, check=True, on=on)
    host.virsh("undefine", domain, check=True, on=on)
    lab.node(spoke).close()  # its SSH connection died without a goodbye
    start = time.monotonic()
    stack = open_stack(lab.name)
    # One read at a time: reads of two CloudInitDisks at once (each streams its ISO back over the
    # provider's one libvirt connection) have deadlocked terraform-provider-libvirt 0.8.1 here.
    refreshed = stack.refresh(parallel=1, on_output=lambda line: None)
    report.figures["refresh_changes"] = dict(refreshed.summary.resource_changes or {})
    up = stack.up(on_output=lambda line: None)
    changes = dict(up.summary.resource_changes or {})
    report.figures["up_changes"] = changes
    report.lines.append(f"refresh: {report.figures['refresh_changes']}; up: {changes}")
    if {k: v for k, v in changes.items() if k != "same"} != {"create": 1}:
        report.fail(f"up should create only {domain}, it did {changes}")
    if host.domain_state(domain, on=on) != "running":
        report.fail(f"{domain} is not running after up")
    time_recovery(report, f"{spoke} tunnel back after refresh + up", lambda: overlay_flows(lab, spoke),
                  boot_bound(lab), echo, settle_seconds(lab), since=start)
    report.figures["site"] = spoke
    return report
