"""`drill drift`: a spoke's VM is destroyed and undefined behind Pulumi's back.

`pulumi refresh` notices the domain is gone and `pulumi up` recreates it and
nothing else (its disk and cloud-init ISO are still there, so it boots as after
a power cut); then its tunnel must come back by itself.
"""
from __future__ import annotations

import time

from pulumi import automation as auto

from lablib import waits
from labctl import host
from labctl.bounded import isolated
from labctl.drills import (DrillReport, Echo, boot_bound, overlay_flows, pick_spoke, require_healthy, settle_seconds,
                           time_recovery)
from labctl.stack import LabStack, open_stack


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
    refreshed = _engine(lab.name, "refresh", report)
    if refreshed is None:
        return report
    report.figures["refresh_changes"] = refreshed
    changes = _engine(lab.name, "up", report)
    if changes is None:
        return report
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


def _engine(stack: str, operation: str, report: DrillReport) -> dict[str, int] | None:
    """`pulumi refresh` or `pulumi up` of the stack: its resource changes by kind; None if it failed
    or hung (bounded by waits.ENGINE_STEP_SECONDS, in a process of its own: labctl.bounded), and
    the report fails naming each resource's error."""
    try:
        changes, errors = isolated(waits.ENGINE_STEP_SECONDS, f"pulumi {operation}", engine_step, stack, operation)
    except (TimeoutError, RuntimeError) as error:
        report.fail(str(error))
        return None
    if errors:
        report.fail(f"pulumi {operation} failed: " + "; ".join(errors))
        return None
    return changes


def engine_step(stack: str, operation: str) -> tuple[dict[str, int], list[str]]:
    """In the spawned process: the operation's resource changes, and its errors (one line per
    resource in error; a CommandError's own text is cut short in a test's output)."""
    found: list[str] = []
    selected = open_stack(stack)
    step = selected.refresh if operation == "refresh" else selected.up
    try:
        result = step(on_output=lambda line: None, on_event=lambda event: found.extend(_errors_of(event)))
    except auto.errors.CommandError as error:
        return {}, found or [str(error).strip().splitlines()[-1]]
    return dict(result.summary.resource_changes or {}), []


def _errors_of(event: auto.EngineEvent) -> list[str]:
    """The resource and message of an engine error diagnostic, as one line."""
    diagnostic = event.diagnostic_event
    if diagnostic is None or diagnostic.severity != "error":
        return []
    name = (diagnostic.urn or "").rsplit("::", 1)[-1] or "stack"
    return [f"{name}: {' '.join(diagnostic.message.split())}"]
