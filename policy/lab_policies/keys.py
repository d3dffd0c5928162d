"""Keys: pre-shared and SSH keys are secrets, long, unique, and never appear in plain text."""
from __future__ import annotations

from typing import Any, Iterator

from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs, Secret, StackValidationArgs

from .plumbing import Report, Res, components, is_unknown, plan, resource_policy, reveal, setting, stack_policy
from .resources import DYNAMIC, NODE, TUNNEL, duplicates, label_of


KEY_SCHEMA = PolicyConfigSchema({"minKeyLength": {
    "type": "integer", "minimum": 16, "default": 32,
    "description": "Minimum length of every tunnel's pre-shared key, in characters."}})


def check_keys(r: Res, args: ResourceValidationArgs, report: Report) -> None:
    if r.type == DYNAMIC:
        if r.has("privateKey") and not isinstance(r.props["privateKey"], Secret):
            report(f"{label_of(r)}: input privateKey (the SSH key that pushes the hub side) is not a secret: "
                   "pass it as pulumi.Output.secret(...).")
        return
    psk = r.props.get("psk")
    if psk is None and r.get("auth") == "cert":
        return  # a certificate tunnel needs no pre-shared key (ipsec-cert-keys-allowed judges its key)
    if psk is None or is_unknown(psk):
        if psk is None:
            report(f"{label_of(r)}: has no pre-shared key (psk): derive one per tunnel from lab:masterSecret.")
        return
    if not isinstance(psk, Secret):
        report(f"{label_of(r)}: the pre-shared key (psk) is a plain input, so it would be stored and shown "
               "unencrypted: pass it as pulumi.Output.secret(...).")
    minimum = setting(args, KEY_SCHEMA, "minKeyLength")
    value = reveal(psk)
    if not is_unknown(value) and len(str(value)) < minimum:
        report(f"{label_of(r)}: the pre-shared key has {len(str(value))} characters, fewer than {minimum}: "
               "use a longer key (or lower minKeyLength in the pack config).")


keys_secret_and_long = resource_policy(
    "ipsec-keys-secret-and-long",
    "Every tunnel's pre-shared key (and the SSH key that pushes the hub side) is a secret; keys are long.",
    (TUNNEL, DYNAMIC), check_keys, schema=KEY_SCHEMA)


def check_unique_keys_and_ids(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    tunnels = components(args, resources, TUNNEL, "spokeEnd")
    nodes = components(args, resources, NODE, "role")
    for _value, first, later in duplicates((r.get("psk"), r) for r in tunnels):
        report(f"{label_of(later)} uses the same pre-shared key as {label_of(first)}: give every tunnel its own key "
               "(the lab derives one per spoke from lab:masterSecret and the IKE IDs).", later.urn)
    spokes = [r for r in nodes if r.get("role") == "spoke"]
    hub_ids = {r.get("ikeId") for r in nodes if r.get("role") == "hub"}
    for value, first, later in duplicates((r.get("ikeId"), r) for r in spokes):
        report(f"{label_of(later)} has IKE ID {value}, as {label_of(first)} does: every spoke needs its own ID "
               "(the hub tells spokes apart by it).", later.urn)
    for value, first, later in duplicates(((r.get("spokeEnd") or {}).get("localId"), r) for r in tunnels):
        if first.get("spoke") == later.get("spoke"):
            continue  # two tunnels of one spoke: hub-spoke-wiring reports it
        report(f"{label_of(later)}'s spoke end has IKE ID {value}, as {label_of(first)}'s does: every spoke needs "
               "its own ID.", later.urn)
    for r in spokes:
        if r.get("ikeId") in hub_ids:
            report(f"{label_of(r)} uses the hub's IKE ID {r.get('ikeId')}: give the spoke its own ID.", r.urn)


keys_and_ids_unique = stack_policy(
    "ipsec-keys-and-ids-unique",
    "No two tunnels share a pre-shared key and no two spokes share an IKE ID.",
    check_unique_keys_and_ids)

MIN_SEARCHED_KEY = 8  # shorter values could match by chance


def _plain_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string outside a Secret."""
    if isinstance(value, Secret):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _plain_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _plain_strings(item, f"{path}[{index}]")


def check_no_plaintext_keys(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    tunnels = components(args, resources, TUNNEL, "spokeEnd")
    keys = {str(r.get("psk")): r for r in tunnels
            if r.get("psk") and not is_unknown(r.get("psk")) and len(str(r.get("psk"))) >= MIN_SEARCHED_KEY}
    for r in resources:
        # The Tunnel's own psk input is judged by ipsec-keys-secret-and-long.
        props = {k: v for k, v in r.props.items() if not (r.type == TUNNEL and k == "psk")}
        for path, text in _plain_strings(props, ""):
            for key, tunnel in keys.items():
                if key in text:
                    report(f"{label_of(r)}: input {path} holds {label_of(tunnel)}'s pre-shared key in plain text: "
                           "build it inside an apply of the secret key (or wrap it in pulumi.Output.secret) "
                           "so it stays encrypted.", r.urn)


keys_never_in_plaintext = stack_policy(
    "ipsec-keys-never-in-plaintext",
    "No pre-shared key appears in a non-secret input (cloud-init user data, files pushed to the hub).",
    check_no_plaintext_keys)
