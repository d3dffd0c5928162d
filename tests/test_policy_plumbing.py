"""Pins every pulumi-policy internal that policy/lab_policies/plumbing.py works around.

Each test names one thing the workarounds rely on; after an upgrade of
pulumi-policy (policy/requirements.txt, requirements-dev.txt) a failure here
says which workaround broke, before a preview silently misjudges a plan.
"""
from __future__ import annotations

import inspect

import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import (EnforcementLevel, PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, Secret,
                           StackValidationArgs)
from pulumi_policy import deserialize as wire
from pulumi_policy import policy as analyzer
from pulumi_policy.proxy import unknown_checking_proxy
from pulumi_policy.secret import secrets_preserving_proxy

from policy_harness import OPTIONS, lab_policies

plumbing = lab_policies.plumbing
URN = "urn:pulumi:ci::lab::lab:index:Tunnel::t"


def analyze_one(props: dict, monkeypatch: pytest.MonkeyPatch, keep_secrets: bool) -> object:
    """What a resource policy sees of props when the analyzer service runs it."""
    monkeypatch.setattr(analyzer, "deserialize_properties", analyzer.deserialize_properties)  # restored after
    if keep_secrets:
        plumbing.keep_secret_markers()
    seen = []
    policy = ResourceValidationPolicy(name="see", description="records what it sees",
                                      validate=lambda args, _report: seen.append(plumbing.raw(args.props)))
    service = analyzer._PolicyAnalyzerServicer("pin", "0.0.1", [policy], EnforcementLevel.MANDATORY)
    message = struct_pb2.Struct()
    message.update(props)
    service.Analyze(analyzer_pb2.AnalyzeRequest(type="t", name="t", urn=URN, properties=message), None)
    (props_seen,) = seen
    return props_seen


def test_analyzer_deserializes_through_the_module_global_it_imported() -> None:
    # keep_secret_markers() replaces pulumi_policy.policy.deserialize_properties: it must be looked up there.
    assert analyzer.deserialize_properties is wire.deserialize_properties
    assert list(inspect.signature(wire.deserialize_properties).parameters) == ["props", "proxy_secrets"]
    assert inspect.signature(wire.deserialize_properties).parameters["proxy_secrets"].default is False
    for method in (analyzer._PolicyAnalyzerServicer.Analyze, analyzer._PolicyAnalyzerServicer.AnalyzeStack):
        assert "deserialize_properties(json_format.MessageToDict(" in inspect.getsource(method)


def test_secret_inputs_reach_policies_as_secret_only_with_the_workaround(monkeypatch: pytest.MonkeyPatch) -> None:
    props = {"psk": {wire.SPECIAL_SIG_KEY: wire.SPECIAL_SECRET_SIG, "value": "k" * 40}, "plain": "p"}
    assert analyze_one(props, monkeypatch, keep_secrets=False) == {"psk": "k" * 40, "plain": "p"}
    seen = analyze_one(props, monkeypatch, keep_secrets=True)
    assert isinstance(seen["psk"], Secret) and seen["psk"].value == "k" * 40 and seen["plain"] == "p"


def test_wire_signatures_are_the_engines() -> None:
    assert wire.SPECIAL_SIG_KEY == rpc._special_sig_key
    assert wire.SPECIAL_SECRET_SIG == rpc._special_secret_sig


def test_assets_still_go_through_the_library() -> None:
    asset = {wire.SPECIAL_SIG_KEY: wire.SPECIAL_ASSET_SIG, "text": "hello"}
    out = plumbing.deserialize_inputs({"a": asset, "nested": [{"s": {wire.SPECIAL_SIG_KEY: wire.SPECIAL_SECRET_SIG,
                                                                     "value": asset}}]})
    assert isinstance(out["a"], pulumi.StringAsset) and out["a"].text == "hello"
    assert isinstance(out["nested"][0]["s"], Secret) and isinstance(out["nested"][0]["s"].value, pulumi.StringAsset)


def test_raw_undoes_the_library_proxies() -> None:
    value = {"a": [1, {"b": Secret("s")}], "u": rpc.UNKNOWN}
    for proxy in (unknown_checking_proxy(value), secrets_preserving_proxy(value)):
        assert isinstance(proxy, plumbing.PROXIES)
        plain = plumbing.raw(proxy)
        assert plain["a"][0] == 1 and plain["u"] == rpc.UNKNOWN  # reading an unknown through raw does not raise
        assert isinstance(plain["a"][1]["b"], Secret) and plain["a"][1]["b"].value == "s"
    assert isinstance(unknown_checking_proxy([1]), plumbing.PROXIES)
    assert isinstance(secrets_preserving_proxy([1]), plumbing.PROXIES)


def test_unknown_sentinels() -> None:
    assert len(plumbing.UNKNOWNS) == 7 and rpc.UNKNOWN in plumbing.UNKNOWNS
    assert plumbing.is_unknown(rpc.UNKNOWN) and not plumbing.is_unknown("aes256-sha2")


@pytest.mark.parametrize("urn, stack", [
    ("urn:pulumi:ci::lab::lab:index:Lab::lab", "ci"),
    ("urn:pulumi:prod-eu::lab::lab:index:LabNode$libvirt:index/domain:Domain::lab-hub-domain", "prod-eu"),
    ("not-a-urn", ""),
])
def test_stack_name_from_urn(urn: str, stack: str) -> None:
    assert plumbing.stack_of(urn) == stack


def test_validate_lists_run_in_order() -> None:
    # resource_policy() records inputs as the first step of a validate list.
    calls = []
    policy = ResourceValidationPolicy(name="p", description="d",
                                      validate=[lambda *_: calls.append(1), lambda *_: calls.append(2)])
    policy.validate(None, None)
    assert calls == [1, 2]


def test_stack_requests_carry_no_inputs() -> None:
    # Why plumbing records inputs: AnalyzeStack gets one properties map per resource (outputs). Should a
    # pulumi upgrade send inputs too, this fails and the record can go.
    fields = {f.name for f in analyzer_pb2.AnalyzerResource.DESCRIPTOR.fields}
    assert "properties" in fields and not {"inputs", "inputProperties"} & fields


def test_stack_policies_read_recorded_inputs_and_can_say_not_applicable() -> None:
    plumbing.forget_recorded_inputs()
    outputs = PolicyResource("lab:index:Tunnel", {"spoke": "spoke1"}, URN, "t", OPTIONS, None, None, [], {})
    args = StackValidationArgs([outputs], None)
    assert plumbing.plan(args)[0].props == {"spoke": "spoke1"}  # nothing recorded: what the stack sent
    any_resource_policy = lab_policies.crypto.crypto_allowlist
    any_resource_policy.validate(ResourceValidationArgs("lab:index:Tunnel", {"spokeEnd": {}}, URN, "t", OPTIONS,
                                                        None, None), lambda *_: None)
    assert plumbing.plan(args)[0].props == {"spokeEnd": {}}
    with pytest.raises(analyzer._NotApplicableError):
        plumbing.components(args, plumbing.plan(args), "lab:index:Tunnel", "psk")
    plumbing.forget_recorded_inputs()
    assert plumbing.plan(args)[0].props == {"spoke": "spoke1"}
