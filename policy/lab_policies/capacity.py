"""Capacity: the lab's VMs fit the host's budget, and production stacks get hardware virtualization."""
from __future__ import annotations

import re

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationArgs, StackValidationArgs

from .plumbing import Report, Res, is_unknown, of_type, plan, resource_policy, setting, stack_of, stack_policy
from .resources import DOMAIN, LAB, as_number, label_of


CAPACITY_SCHEMA = PolicyConfigSchema({
    "maxMemoryMib": {"type": "integer", "minimum": 256, "default": 16384,
                     "description": "Memory budget for all lab VMs together, in MiB."},
    "maxVcpus": {"type": "integer", "minimum": 1, "default": 16,
                 "description": "vCPU budget for all lab VMs together."},
})


def check_capacity(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    domains = of_type(resources, DOMAIN)
    anchor = next((r.urn for r in of_type(resources, LAB)), None)
    memory = sum(as_number(d.get("memory", 512)) or 0 for d in domains)  # provider defaults: 512 MiB, 1 vCPU
    vcpus = sum(as_number(d.get("vcpu", 1)) or 0 for d in domains)
    for total, unit, key, change in ((memory, "MiB of memory", "maxMemoryMib", "lab:memoryMib"),
                                     (vcpus, "vCPUs", "maxVcpus", "lab:vcpus")):
        budget = setting(args, CAPACITY_SCHEMA, key)
        if total > budget:
            report(f"the stack's {len(domains)} VMs need {total} {unit}, over the budget of {budget}: lower "
                   f"lab:spokes or {change}, or raise {key} in the pack config.", anchor)


capacity_budget = stack_policy(
    "capacity-budget",
    "All lab VMs together stay within the memory and vCPU budget of the host.",
    check_capacity, enforcement=EnforcementLevel.ADVISORY, schema=CAPACITY_SCHEMA)

KVM_SCHEMA = PolicyConfigSchema({"productionStackPattern": {
    "type": "string", "default": r"(^|[^a-z])prod(uction)?([^a-z]|$)",
    "description": "Case-insensitive regular expression: stacks whose name matches must use KVM."}})


def is_production(stack: str, pattern: str) -> bool:
    return re.search(pattern, stack, re.IGNORECASE) is not None


def check_kvm(r: Res, args: ResourceValidationArgs, report: Report) -> None:
    stack = stack_of(r.urn)
    domain_type = r.get("type", "kvm")  # the provider's default
    if is_production(stack, setting(args, KVM_SCHEMA, "productionStackPattern")) and \
            domain_type != "kvm" and not is_unknown(domain_type):
        report(f"{label_of(r)}: stack {stack!r} is a production stack but the domain type is {domain_type!r} "
               "(software emulation): set lab:domainType to kvm.")


production_needs_kvm = resource_policy(
    "production-needs-kvm",
    "Domains of a stack whose name says production use hardware virtualization (type kvm).",
    (DOMAIN,), check_kvm, schema=KVM_SCHEMA)
