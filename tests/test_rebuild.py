"""`labctl rebuild STACK SPOKE`: which resources it replaces, and that they can be replaced."""
from __future__ import annotations

from typing import Any

import click
import pytest

from harness import run_program, stack_values
from lablib import names
from labctl.rebuild import REBUILT_TYPES, check_spoke, spoke_urns
from labctl.stack import LabStack

URN = "urn:pulumi:ci::gre-ipsec-lab::"
NODE = "lab:index:Lab$lab:index:LabNode$"


def exported(*spokes: str) -> list[dict[str, Any]]:
    """The resources of a stack export: the Lab, and each site's node with its libvirt resources."""
    resources: list[dict[str, Any]] = [{"urn": f"{URN}lab:index:Lab::lab", "type": "lab:index:Lab"}]
    for site in (names.HUB, *spokes):
        resources.append({"urn": f"{URN}lab:index:Lab$lab:index:LabNode::lab-{site}", "type": "lab:index:LabNode"})
        for typ, name in zip(REBUILT_TYPES, names.node_resources(site)):
            resources.append({"urn": f"{URN}{NODE}{typ}::{name}", "type": typ})
    resources.append({"urn": f"{URN}lab:index:Lab$lab:index:Tunnel$pulumi-python:dynamic:Resource::"
                             "lab-spoke1-tunnel-hub-side", "type": "pulumi-python:dynamic:Resource"})
    return resources


def test_a_spokes_domain_disk_and_cloudinit_disk_and_nothing_else() -> None:
    urns = spoke_urns(exported("spoke1", "spoke2", "spoke10"), "spoke1")
    assert sorted(urn.rsplit("::", 1)[-1] for urn in urns) == ["lab-spoke1-cloudinit", "lab-spoke1-disk",
                                                               "lab-spoke1-domain"]
    assert all(urn.startswith(URN + NODE) for urn in urns)


def test_a_resource_pending_delete_is_not_chosen_and_a_missing_one_is_named() -> None:
    resources = exported("spoke1")
    domain = next(r for r in resources if r["urn"].endswith("::lab-spoke1-domain"))
    domain["delete"] = True
    with pytest.raises(click.ClickException, match="lab-spoke1-domain"):
        spoke_urns(resources, "spoke1")


def test_an_unknown_spoke_is_one_error_naming_it_and_the_spokes() -> None:
    lab = LabStack("ci", {"nodes": {"hub": {}, "spoke1": {}, "spoke2": {}}}, {})
    assert check_spoke(lab, "spoke2") == "spoke2"
    for wrong in ("spoke3", "hub"):
        with pytest.raises(click.BadParameter, match=f"'{wrong}' is not a spoke of stack ci; spokes: spoke1, spoke2"):
            check_spoke(lab, wrong)


def test_the_program_names_a_node_as_rebuild_looks_for_it_and_replaces_it_delete_first() -> None:
    """Their libvirt names are fixed: a replacement created beside the old one would fail."""
    run = run_program(stack_values({"spokes": 2}))
    for site in (names.HUB, "spoke1", "spoke2"):
        rebuilt = [run.named(name) for name in names.node_resources(site)]
        assert sorted(r.typ for r in rebuilt) == sorted(REBUILT_TYPES)
        assert all(r.delete_before_replace for r in rebuilt), site
