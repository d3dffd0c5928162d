"""Run the policy pack on a plan recorded under mocks, the way the analyzer would.

evaluate() mirrors pulumi-policy's analyzer: every resource policy sees every
resource (inputs deserialized by the pack's deserializer, wrapped in the
library's unknown-checking proxy), then every stack policy sees the stack.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

from pulumi_policy import (PolicyCustomTimeouts, PolicyProviderResource, PolicyResource, PolicyResourceOptions,
                           ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import unknown_checking_proxy

from harness import PROJECT, ROOT, SECRET_SIG, Recorded, run_program, stack_values

sys.path.insert(0, str(ROOT / "policy"))
import lab_policies  # noqa: E402  (the pack's package, importable without starting its server)

SECRET = "1b47061264138c4ac30d75fd1eb44270"  # the value of SECRET_SIG that marks a secret
OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # "mandatory" or "advisory"
    message: str
    urn: str | None


def urn(stack: str, resource: Recorded) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{resource.typ}::{resource.name}"


@cache
def _planned(stack: str, program_stack: str, overrides: tuple[tuple[str, str], ...]) -> tuple[Recorded, ...]:
    values = stack_values({key: json.loads(value) for key, value in overrides}, stack=program_stack)
    return tuple(run_program(values, stack=stack).resources)


def planned(stack: str, program_stack: str | None = None, **overrides: Any) -> list[Recorded]:
    """A fresh copy of what the program declares for stack (config from stacks/Pulumi.<program_stack>.yaml,
    then overrides: config values, lists included)."""
    key = tuple(sorted((name, json.dumps(value)) for name, value in overrides.items()))
    return copy.deepcopy(list(_planned(stack, program_stack or stack, key)))


def evaluate(resources: list[Recorded], stack: str, config: dict[str, dict[str, Any]] | None = None) -> list[Violation]:
    """Every violation the pack reports for this plan; config is the pack config (policy -> values)."""
    lab_policies.plumbing.forget_recorded_inputs()
    found: list[Violation] = []
    resource_policies = [p for p in lab_policies.POLICIES if isinstance(p, ResourceValidationPolicy)]
    stack_policies = [p for p in lab_policies.POLICIES if p not in resource_policies]

    def props(r: Recorded) -> Any:
        return unknown_checking_proxy(lab_policies.plumbing.deserialize_inputs(r.inputs))

    def reporter(policy: Any, default_urn: str | None):
        def report(message: str, urn_: str | None = None) -> None:
            found.append(Violation(policy.name, policy.enforcement_level.value, message, urn_ or default_urn))
        return report

    for policy in resource_policies:
        for r in resources:
            args = ResourceValidationArgs(r.typ, props(r), urn(stack, r), r.name, OPTIONS, None,
                                          (config or {}).get(policy.name))
            try:
                policy.validate(args, reporter(policy, args.urn))
            except _NotApplicableError:
                pass
    # The engine hands each resource's explicit provider (one per host) to the stack policies.
    providers = {r.name: PolicyProviderResource(r.typ, props(r), urn(stack, r), r.name)
                 for r in resources if r.typ == "pulumi:providers:libvirt"}
    stack_resources = [PolicyResource(r.typ, props(r), urn(stack, r), r.name, OPTIONS,
                                      providers[r.provider.split("::")[-2]] if r.provider else None, None, [], {})
                       for r in resources]
    for policy in stack_policies:
        try:
            policy.validate(StackValidationArgs(stack_resources, (config or {}).get(policy.name)),
                            reporter(policy, None))
        except _NotApplicableError:
            pass
    return found


def mandatory(violations: list[Violation]) -> set[str]:
    return {v.policy for v in violations if v.level == "mandatory"}


def named(resources: list[Recorded], name: str) -> Recorded:
    (match,) = [r for r in resources if r.name == name]
    return match


def secret(value: Any) -> dict[str, Any]:
    """value as the engine sends a secret input."""
    return {SECRET_SIG: SECRET, "value": value}


def unwrap(value: Any) -> Any:
    """A secret input made plain."""
    return value["value"] if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET else value
