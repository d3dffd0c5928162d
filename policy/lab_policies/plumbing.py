"""How the pack reads resources from pulumi-policy 1.21: every workaround for its internals lives here.

pulumi-policy does not give a policy three things the pack needs; this module
makes up for each, and tests/test_policy_plumbing.py pins every internal it
touches, so an upgrade that breaks a workaround fails a fast test:

* Secrets: Analyze and AnalyzeStack deserialize properties with
  proxy_secrets=False, which silently unwraps secrets, so a policy cannot tell
  a secret pre-shared key from a plain one. keep_secret_markers() (called by
  the pack's __main__.py) makes the analyzer use deserialize_inputs(), which
  keeps every secret as a pulumi_policy.Secret.
* Component props in stack policies: AnalyzeStack sends each resource's
  OUTPUTS, and a component's outputs are what it passed to register_outputs,
  not its props. Every resource policy built with resource_policy() therefore
  first records the inputs it was shown, and stack policies read them through
  plan() (see _InputsByUrn for why this one piece of shared state must stay).
* The stack name is not in the validation args: stack_of() takes it from the
  resource URN (urn:pulumi:STACK::project::type::name).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyProviderResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import deserialize as _wire
from pulumi_policy import policy as _analyzer
from pulumi_policy import proxy as _proxy
from pulumi_policy import secret as _secret


Report = Callable[..., None]

# --------------------------------------------------------------------------
# Wire format: keep secrets visible, undo the analyzer's proxies.

STOCK_DESERIALIZE = _wire.deserialize_properties
# The sentinels the engine sends for values only known after `pulumi up`.
UNKNOWNS = frozenset(value for name, value in vars(_proxy).items()
                     if name.startswith("UNKNOWN_") and name.endswith("_VALUE"))
# The proxies the analyzer wraps props in; each hands back what it wraps under "__target".
PROXIES = (_proxy._DictProxy, _proxy._ListProxy,  # pylint: disable=protected-access
           _secret._DictSecretsProxy, _secret._ListSecretsProxy)  # pylint: disable=protected-access


def deserialize_inputs(props: Mapping[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    """pulumi_policy's deserialize_properties, except that a secret becomes Secret(value).

    proxy_secrets=True is the Remediate path: left to the library.
    """
    if proxy_secrets:
        return STOCK_DESERIALIZE(dict(props), True)
    return {key: _keep_secrets(value) for key, value in props.items()}


def _keep_secrets(value: Any) -> Any:
    if isinstance(value, list):
        return [_keep_secrets(item) for item in value]
    if isinstance(value, dict):
        signature = value.get(_wire.SPECIAL_SIG_KEY)
        if signature == _wire.SPECIAL_SECRET_SIG:
            return Secret(_keep_secrets(value.get("value")))
        if signature is not None:  # assets and archives
            return _wire._deserialize_property(value)  # pylint: disable=protected-access
        return {key: _keep_secrets(item) for key, item in value.items()}
    return value


def keep_secret_markers() -> None:
    """Make the analyzer hand policies Secret(...) for secret inputs (call before PolicyPack)."""
    _analyzer.deserialize_properties = deserialize_inputs


def raw(value: Any) -> Any:
    """A plain copy of policy props: proxies undone; Secret markers and unknowns kept."""
    if isinstance(value, PROXIES):
        value = value["__target"]
    if isinstance(value, Secret):
        return Secret(raw(value.value))
    if isinstance(value, Mapping):
        return {key: raw(value[key]) for key in value}
    if isinstance(value, (list, tuple)):
        return [raw(item) for item in value]
    return value


def reveal(value: Any) -> Any:
    """value with every Secret replaced by what it holds."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def is_unknown(value: Any) -> bool:
    """True for a value that is only known after `pulumi up` (an output during preview)."""
    return isinstance(value, str) and value in UNKNOWNS


def stack_of(urn: str) -> str:
    """The stack name in urn:pulumi:STACK::project::type::name."""
    head = urn.split("::", 1)[0]
    return head[len("urn:pulumi:"):] if head.startswith("urn:pulumi:") else ""


# --------------------------------------------------------------------------
# The resources policies look at.

@dataclass
class Res:
    """One planned resource: type, name, URN and inputs (Secret markers kept)."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """An input with secrets revealed."""
        return reveal(self.props.get(key, default))

    def has(self, key: str) -> bool:
        return key in self.props

    @classmethod
    def of(cls, args: ResourceValidationArgs) -> Res:
        return cls(args.resource_type, args.name, args.urn, raw(args.props))


class _InputsByUrn:
    """The inputs every resource policy was shown, by URN, for the stack policies to read.

    This is the one piece of state the policies share, and it cannot be
    derived from the stack: AnalyzeStack gets each resource's outputs, which
    for a ComponentResource are only what it passed to register_outputs, not
    its props (checked with the real engine, see FIELD-NOTES). The engine
    analyzes every resource before the stack, in one pack process per
    deployment, so recording in Analyze and reading in AnalyzeStack is
    sound. gRPC calls may come on several threads: hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._props: dict[str, dict[str, Any]] = {}

    def record(self, args: ResourceValidationArgs, _report: Report) -> None:
        """A resource policy's first validate step."""
        props = raw(args.props)
        with self._lock:
            self._props[args.urn] = props

    def forget(self) -> None:
        with self._lock:
            self._props.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._props)


_RECORDED = _InputsByUrn()


def forget_recorded_inputs() -> None:
    """Start a new deployment (tests; the engine starts a new pack process)."""
    _RECORDED.forget()


def plan(args: StackValidationArgs) -> list[Res]:
    """Every resource with its inputs: recorded by the resource policies, else what the stack sent."""
    recorded = _RECORDED.snapshot()
    resources = sorted(args.resources, key=lambda r: r.urn)  # the engine sends them in map order
    return [Res(r.resource_type, r.name, r.urn, recorded.get(r.urn) or raw(r.props)) for r in resources]


def of_type(resources: Iterable[Res], typ: str) -> list[Res]:
    return [r for r in resources if r.type == typ]


def components(args: StackValidationArgs, resources: list[Res], typ: str, key: str) -> list[Res]:
    """The components of typ, which must carry their props (key), else the policy cannot judge."""
    found = of_type(resources, typ)
    if any(not r.has(key) for r in found):
        args.not_applicable(f"{typ} props are not available (their inputs were not recorded: "
                            "keep at least one of the pack's resource policies enabled)")
    return found


def setting(args: ResourceValidationArgs | StackValidationArgs, schema: PolicyConfigSchema, key: str) -> Any:
    """A pack config value, or the schema's default (numbers arrive as floats)."""
    value = (args.get_config() or {}).get(key, schema.properties[key].get("default"))
    return int(value) if schema.properties[key].get("type") == "integer" else value


# --------------------------------------------------------------------------
# Policy construction.

CheckResource = Callable[[Res, ResourceValidationArgs, Report], None]


def resource_policy(name: str, description: str, types: tuple[str, ...], check: CheckResource,
                    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
                    schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    """A resource policy that records the inputs (for the stack policies), then checks types."""
    def validate(args: ResourceValidationArgs, report: Report) -> None:
        if args.resource_type in types:
            check(Res.of(args), args, report)
    return ResourceValidationPolicy(name=name, description=description, validate=[_RECORDED.record, validate],
                                    enforcement_level=enforcement, config_schema=schema)


def stack_policy(name: str, description: str, check: Callable[[StackValidationArgs, Report], None],
                 enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
                 schema: PolicyConfigSchema | None = None) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=check,
                                 enforcement_level=enforcement, config_schema=schema)


DEFAULT_HOST = ""  # resources on the default provider: today's one host, LIBVIRT_DEFAULT_URI


def host_of(provider: PolicyProviderResource | None) -> str:
    """Which hypervisor a resource lands on: its explicit provider (one per host; the engine sends it
    with its inputs, checked with the real CLI), named by its uri, or by its own name while the uri is
    unknown or empty (then LIBVIRT_DEFAULT_URI); DEFAULT_HOST for the default provider."""
    if provider is None or provider.name == "default" or "::default" in provider.urn:
        return DEFAULT_HOST
    uri = reveal(raw(provider.props)).get("uri")
    return uri if isinstance(uri, str) and uri and not is_unknown(uri) else provider.name
