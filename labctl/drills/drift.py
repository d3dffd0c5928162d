"""`drill drift`: a spoke's VM is destroyed and undefined behind Pulumi's back.

`pulumi refresh` notices the domain is gone and `pulumi up` recreates it and
nothing else (its disk and cloud-init ISO are still there, so it boots as after
a power cut); then its tunnel must come back by itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pulumi import automation as auto

from lablib import waits
from labctl import host
from labctl.bounded import within
from labctl.drills import (DrillReport, Echo, boot_bound, overlay_flows, pick_spoke, require_healthy, settle_seconds,
                           time_recovery)
from labctl.stack import LabStack, open_stack

T = TypeVar("T")


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
    refreshed = _engine(lambda on_event: stack.refresh(on_output=lambda line: None, on_event=on_event),
                        "refresh", report)
    if refreshed is None:
        return report
    report.figures["refresh_changes"] = dict(refreshed.summary.resource_changes or {})
    up = _engine(lambda on_event: stack.up(on_output=lambda line: None, on_event=on_event), "up", report)
    if up is None:
        return report
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


def _engine(operation: Callable[[Callable[[auto.EngineEvent], None]], T], what: str,
            report: DrillReport) -> T | None:
    """operation(on_event), a Pulumi operation bounded by waits.ENGINE_STEP_SECONDS; None if it failed
    or hung, and the report fails naming each resource's error (a CommandError's own text is cut
    short in a test's output)."""
    found: list[str] = []
    try:
        return within(waits.ENGINE_STEP_SECONDS, f"pulumi {what}",
                      lambda: operation(lambda event: found.extend(_errors_of(event))))
    except auto.errors.CommandError as error:
        report.fail(f"pulumi {what} failed: " + "; ".join(found or [str(error).strip().splitlines()[-1]]))
    except TimeoutError as error:
        report.fail(f"{error}; resources in error: {'; '.join(found) or 'none'}")
    return None


def _errors_of(event: auto.EngineEvent) -> list[str]:
    """The resource and message of an engine error diagnostic, as one line."""
    diagnostic = event.diagnostic_event
    if diagnostic is None or diagnostic.severity != "error":
        return []
    name = (diagnostic.urn or "").rsplit("::", 1)[-1] or "stack"
    return [f"{name}: {' '.join(diagnostic.message.split())}"]
