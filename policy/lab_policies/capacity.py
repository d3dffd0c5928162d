"""Capacity: the VMs of each libvirt host fit its budget, and production stacks get hardware virtualization."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, PolicyProviderResource, ResourceValidationArgs,
                           StackValidationArgs)

from .plumbing import (DEFAULT_HOST, Report, Res, host_of, is_unknown, of_type, plan, resource_policy, setting,
                       stack_of, stack_policy)
from .resources import DOMAIN, LAB, as_number, label_of


CAPACITY_SCHEMA = PolicyConfigSchema({
    "maxMemoryMib": {"type": "integer", "minimum": 256, "default": 16384,
                     "description": "Memory budget for the lab VMs of one libvirt host together, in MiB."},
    "maxVcpus": {"type": "integer", "minimum": 1, "default": 16,
                 "description": "vCPU budget for the lab VMs of one libvirt host together."},
})
@dataclass
class HostLoad:
    vms: int = 0
    memory: float = 0
    vcpus: float = 0


def loads(domains: Iterable[tuple[str, Res]]) -> dict[str, HostLoad]:
    """Memory and vCPUs summed per host (provider defaults: 512 MiB, 1 vCPU)."""
    result: dict[str, HostLoad] = {}
    for host, domain in domains:
        load = result.setdefault(host, HostLoad())
        load.vms += 1
        load.memory += as_number(domain.get("memory", 512)) or 0
        load.vcpus += as_number(domain.get("vcpu", 1)) or 0
    return result


def check_capacity(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    providers = {r.urn: host_of(r.provider) for r in args.resources}
    anchor = next((r.urn for r in of_type(resources, LAB)), None)
    per_host = loads((providers.get(d.urn, DEFAULT_HOST), d) for d in of_type(resources, DOMAIN))
    for host, load in sorted(per_host.items()):
        whose = f"host {host}'s" if host else "the stack's"
        for total, unit, key, change in ((load.memory, "MiB of memory", "maxMemoryMib", "lab:memoryMib"),
                                         (load.vcpus, "vCPUs", "maxVcpus", "lab:vcpus")):
            budget = setting(args, CAPACITY_SCHEMA, key)
            if total > budget:
                report(f"{whose} {load.vms} VMs need {round(total)} {unit}, over the budget of {budget} per host: "
                       f"lower lab:spokes or {change}, spread spokes over more lab:hosts, or raise {key} "
                       "in the pack config.", anchor)


capacity_budget = stack_policy(
    "capacity-budget",
    "The lab VMs of each libvirt host together stay within that host's memory and vCPU budget.",
    check_capacity, enforcement=EnforcementLevel.ADVISORY, schema=CAPACITY_SCHEMA)

# Which stacks are production ones: the KVM rule's and the MTU rule's (as-deployed spokes) pack config.
PRODUCTION_PATTERN = {"productionStackPattern": {
    "type": "string", "default": r"(^|[^a-z])prod(uction)?([^a-z]|$)",
    "description": "Case-insensitive regular expression: stacks whose name matches are production stacks."}}
KVM_SCHEMA = PolicyConfigSchema(PRODUCTION_PATTERN)


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
