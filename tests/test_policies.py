"""The CrossGuard pack (policy/) on plans recorded under mocks: no Pulumi CLI needed.

Every committed stack passes; for each policy a modified plan triggers exactly
that policy (no other mandatory one) and a compliant twin triggers nothing.
The last tests drive pulumi-policy's own analyzer service with protobuf
requests, as the engine would, to pin down how it handles secrets and stack
resources.
"""
from __future__ import annotations

import copy
import runpy
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi_policy
import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy import policy as analyzer
from pulumi_policy.deserialize import deserialize_properties

from harness import ROOT, Recorded
from policy_harness import evaluate, lab_policies, mandatory, named, planned, secret, unwrap, urn

STACKS = sorted(path.name.split(".")[1] for path in (ROOT / "stacks").glob("Pulumi.*.yaml"))
LAB, NODE, TUNNEL = "lab:index:Lab", "lab:index:LabNode", "lab:index:Tunnel"

Mutation = Callable[[list[Recorded]], None]


# --- plan edits -------------------------------------------------------------

def edit(name: str, path: str, value: Any = None, delete: bool = False) -> Mutation:
    """Set (or delete) inputs[path] of the resource called name; path is dotted."""
    def mutate(resources: list[Recorded]) -> None:
        *parents, last = path.split(".")
        target = named(resources, name).inputs
        for key in parents:
            target = target[key]
        if delete:
            del target[last]
        else:
            target[last] = value
    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(resources: list[Recorded]) -> None:
        for mutation in mutations:
            mutation(resources)
    return mutate


def proposals(ike: str | None = None, esp: str | None = None) -> Mutation:
    """The same proposals everywhere (Lab props and both ends of every tunnel)."""
    changes = {key: value for key, value in (("ike", ike), ("esp", esp)) if value is not None}

    def mutate(resources: list[Recorded]) -> None:
        for r in resources:
            if r.typ == LAB:
                r.inputs.update(changes)
            elif r.typ == TUNNEL:
                r.inputs["hubEnd"].update(changes)
                r.inputs["spokeEnd"].update(changes)
    return mutate


def mtus(tunnel: int, inner: int, wan: int | None = None) -> Mutation:
    """New MTUs on every node and tunnel."""
    def mutate(resources: list[Recorded]) -> None:
        for r in resources:
            if r.typ in (NODE, TUNNEL):
                r.inputs.update(tunnelMtu=float(tunnel), innerMtu=float(inner))
                if wan is not None:
                    r.inputs["wanMtu"] = float(wan)
    return mutate


def move_overlay(spoke: str, address: str) -> Mutation:
    """Give a spoke another overlay address, consistently on its node and tunnel."""
    tunnel = f"lab-{spoke}-tunnel"
    return both(edit(f"lab-{spoke}", "overlayAddress", address),
                edit(tunnel, "spokeEnd.localOverlay", address), edit(tunnel, "hubEnd.remoteOverlay", address),
                edit(tunnel, "spokePort.localIp", address), edit(tunnel, "hubPort.remoteIp", address))


def set_ike_id(spoke: str, ike_id: str) -> Mutation:
    """Give a spoke another IKE ID, consistently on its node and tunnel."""
    tunnel = f"lab-{spoke}-tunnel"
    return both(edit(f"lab-{spoke}", "ikeId", ike_id), edit(tunnel, "spokeEnd.localId", ike_id),
                edit(tunnel, "hubEnd.remoteId", ike_id))


def cert_spokes(key: str | None, *spokes: int, lab_key: str | None = None, revoked: tuple[int, ...] = ()) -> Mutation:
    """Props as the program gives certificate spokes: auth and certKey on their Tunnels (key None: no
    certKey), auth, certKey and revokedSpokes on the Lab (lab_key: another certKey there)."""
    def mutate(resources: list[Recorded]) -> None:
        for r in resources:
            if r.typ == TUNNEL and int(r.inputs["spoke"].removeprefix("spoke")) in spokes:
                r.inputs.update(auth="cert", **({"certKey": key} if key is not None else {}))
            elif r.typ == LAB:
                r.inputs.update(auth="psk", certKey=lab_key or key or "ecdsa-p256",
                                revokedSpokes=[float(n) for n in revoked])
    return mutate


def copy_of(name: str, new_name: str, **changes: Any) -> Mutation:
    def mutate(resources: list[Recorded]) -> None:
        twin = copy.deepcopy(named(resources, name))
        twin.name = new_name
        twin.inputs.update(changes)
        resources.append(twin)
    return mutate


def remove(name: str) -> Mutation:
    def mutate(resources: list[Recorded]) -> None:
        resources.remove(named(resources, name))
    return mutate


def plain(name: str, key: str) -> Mutation:
    """Make a secret input plain."""
    def mutate(resources: list[Recorded]) -> None:
        inputs = named(resources, name).inputs
        inputs[key] = unwrap(inputs[key])
    return mutate


def domain_type(value: str) -> Mutation:
    def mutate(resources: list[Recorded]) -> None:
        for r in resources:
            if r.typ == "libvirt:index/domain:Domain":
                r.inputs["type"] = value
    return mutate


def unchanged(_resources: list[Recorded]) -> None:
    pass


SECOND_HUB = dict(site="hub2", ikeId="@hub2", overlayAddress="240.0.0.200", wanAddress="192.168.1.11",
                  mgmtAddress="10.10.0.200", bridgeAddress="10.20.0.200/24")
KEY_31 = "0123456789abcdef0123456789abcde"


@dataclass
class Case:
    policy: str
    violate: Mutation
    comply: Mutation
    message: str  # part of the violation's message
    stack: str = "ci"
    config: dict[str, dict[str, Any]] = field(default_factory=dict)


CASES = {
    # crypto: the same proposals on both ends (so the ends still agree), weak ones first
    "3des": Case("ipsec-crypto-allowlist", proposals(ike="3des-sha2;modp2048"),
                 proposals(ike="aes256-sha2;modp2048"), "3DES"),
    "md5": Case("ipsec-crypto-allowlist", proposals(ike="aes256-md5"), proposals(ike="aes256-sha2_512"), "MD5"),
    "sha1": Case("ipsec-crypto-allowlist", proposals(ike="aes128-sha1;modp2048"),
                 proposals(ike="aes128-sha2_256;modp2048"), "SHA-1"),
    "modp1024": Case("ipsec-crypto-allowlist", proposals(ike="aes256-sha2;modp1024"),
                     proposals(ike="aes256-sha2;modp3072"), "below 2048 bits"),
    "modp1536": Case("ipsec-crypto-allowlist", proposals(ike="aes256-sha2;modp1536"),
                     proposals(ike="aes256-sha2;ecp384"), "below 2048 bits"),
    "null-encryption": Case("ipsec-crypto-allowlist", proposals(esp="null-sha2_256"),
                            proposals(esp="aes_gcm256-null"), "no encryption"),
    "aead-with-integrity": Case("ipsec-crypto-allowlist", proposals(esp="aes_gcm128-sha2"),
                                proposals(esp="chacha20_poly1305-null"), "needs integrity null"),
    "lab-props-only": Case("ipsec-crypto-allowlist", edit("lab", "ike", "des-md5"),
                           edit("lab", "ike", "aes128-sha2_256"), "lab:ike"),
    # certificate key types (ipsec.yaml's certificates section)
    "cert-key-rsa-1024": Case("ipsec-cert-keys-allowed", cert_spokes("rsa-1024", 1),
                              cert_spokes("rsa-2048", 1), "RSA below 2048 bits is breakable"),
    "cert-key-p192": Case("ipsec-cert-keys-allowed", cert_spokes("ecdsa-p192", 1, 2),
                          cert_spokes("ecdsa-p384", 1, 2, revoked=(2,)), "ecdsa-p192"),
    "cert-key-unknown": Case("ipsec-cert-keys-allowed", cert_spokes("ed448", 2), cert_spokes("rsa-4096", 2),
                             "'ed448' is not an allowed key type"),
    "cert-key-only-on-lab": Case("ipsec-cert-keys-allowed", cert_spokes("ecdsa-p256", 1, lab_key="dsa"),
                                 cert_spokes("ecdsa-p256", 1, lab_key="rsa-3072"), "Lab lab: certKey dsa"),
    "cert-tunnel-without-key": Case("ipsec-cert-keys-allowed", cert_spokes(None, 2, lab_key="ecdsa-p256"),
                                    cert_spokes("ecdsa-p256", 2),
                                    "authenticates with a certificate but has no certKey"),
    "lab-auth-without-key": Case("ipsec-cert-keys-allowed", both(cert_spokes("ecdsa-p256", 1),
                                                                 edit("lab", "certKey", delete=True)),
                                 cert_spokes("ecdsa-p256", 1), "plans certificates (auth is set) but has no certKey"),
    "cert-end-without-key": Case("ipsec-cert-keys-allowed",
                                 both(edit("lab-spoke1-tunnel", "hubEnd.auth", "cert"),
                                      edit("lab-spoke1-tunnel", "spokeEnd.auth", "cert")),
                                 both(cert_spokes("ecdsa-p384", 1), edit("lab-spoke1-tunnel", "hubEnd.auth", "cert"),
                                      edit("lab-spoke1-tunnel", "spokeEnd.auth", "cert")), "has no certKey"),
    "cert-end-wrong-authby": Case("ipsec-cert-keys-allowed",
                                  both(cert_spokes("rsa-3072", 2), edit("lab-spoke2-tunnel", "spokeEnd.auth", "cert"),
                                       edit("lab-spoke2-tunnel", "spokeEnd.authby", "ecdsa")),
                                  both(cert_spokes("rsa-3072", 2), edit("lab-spoke2-tunnel", "spokeEnd.auth", "cert"),
                                       edit("lab-spoke2-tunnel", "spokeEnd.authby", "rsa-sha2")),
                                  "spokeEnd.authby 'ecdsa' does not sign with certKey rsa-3072"),
    "auth-unknown": Case("ipsec-cert-keys-allowed", both(cert_spokes("ecdsa-p256", 1), edit("lab", "auth", "x509")),
                         both(cert_spokes("ecdsa-p256", 1), edit("lab", "auth", "cert")), "neither psk nor cert"),
    # keys
    "psk-plain": Case("ipsec-keys-secret-and-long", plain("lab-spoke1-tunnel", "psk"), unchanged,
                      "pre-shared key (psk) is a plain input"),
    "psk-short": Case("ipsec-keys-secret-and-long", edit("lab-spoke1-tunnel", "psk", secret(KEY_31)),
                      edit("lab-spoke1-tunnel", "psk", secret(KEY_31 + "f")), "31 characters, fewer than 32"),
    "ssh-key-plain": Case("ipsec-keys-secret-and-long", plain("lab-spoke1-tunnel-hub-side", "privateKey"),
                          unchanged, "privateKey"),
    "psk-shared": Case("ipsec-keys-and-ids-unique",
                       lambda rs: edit("lab-spoke2-tunnel", "psk", named(rs, "lab-spoke1-tunnel").inputs["psk"])(rs),
                       edit("lab-spoke2-tunnel", "psk", secret(KEY_31 + "X")), "same pre-shared key"),
    "ike-id-shared": Case("ipsec-keys-and-ids-unique", set_ike_id("spoke2", "@spoke1"),
                          set_ike_id("spoke2", "@spoke2b"), "IKE ID @spoke1"),
    "psk-in-plain-user-data": Case("ipsec-keys-never-in-plaintext", plain("lab-spoke1-cloudinit", "userData"),
                                   unchanged, "userData holds"),
    "psk-in-plain-hub-files": Case("ipsec-keys-never-in-plaintext", plain("lab-spoke2-tunnel-hub-side", "files"),
                                   unchanged, "files[1].content holds"),
    # MTU: 1438 / 1396 is the most that fits 1500 with NAT-T, AES-GCM and a GRE key
    "wan-mtu-lowered": Case("mtu-esp-never-fragments", edit("lab-spoke1-tunnel", "wanMtu", 1400.0),
                            both(edit("lab-spoke1-tunnel", "wanMtu", 1400.0),
                                 edit("lab-spoke1-tunnel", "tunnelMtu", 1338.0),
                                 edit("lab-spoke1-tunnel", "innerMtu", 1296.0)), "exceeds 1338"),
    "inner-mtu-1-too-big": Case("mtu-esp-never-fragments", edit("lab-spoke2-tunnel", "innerMtu", 1397.0),
                                edit("lab-spoke2-tunnel", "innerMtu", 1300.0), "inner (br0) MTU 1397 exceeds 1396"),
    "node-tunnel-mtu-1-too-big": Case("mtu-esp-never-fragments", edit("lab-hub", "tunnelMtu", 1439.0),
                                      both(edit("lab-hub", "tunnelMtu", 1430.0), edit("lab-hub", "innerMtu", 1388.0)),
                                      "tunnel MTU 1439 exceeds 1438"),
    "cbc-needs-more-room": Case("mtu-esp-never-fragments", proposals(esp="aes256-sha2_512"),
                                both(proposals(esp="aes256-sha2_512"), mtus(1406, 1364)), "exceeds 1406"),
    "wan-network-smaller": Case("mtu-esp-never-fragments", edit("lab-networks-wan-spoke1", "mtu", 1492.0),
                                both(edit("lab-networks-wan-spoke1", "mtu", 1492.0), mtus(1430, 1388, wan=1492)),
                                "set lab:wanMtu to 1492"),
    # tunnel ends
    "remote-id-differs": Case("tunnel-ends-agree", edit("lab-spoke1-tunnel", "spokeEnd.remoteId", "@hubx"),
                              unchanged, "spokeEnd.remoteId = '@hubx'"),
    "mark-differs": Case("tunnel-ends-agree", edit("lab-spoke1-tunnel", "hubEnd.tunnelMark", 21.0),
                         unchanged, "tunnelMark"),
    "esp-differs": Case("tunnel-ends-agree", edit("lab-spoke1-tunnel", "spokeEnd.esp", "aes_gcm256-null"),
                        both(edit("lab-spoke1-tunnel", "spokeEnd.esp", "aes_gcm256-null"),
                             edit("lab-spoke1-tunnel", "hubEnd.esp", "aes_gcm256-null")), "hubEnd.esp"),
    "gre-not-mirrored": Case("tunnel-ends-agree", edit("lab-spoke2-tunnel", "spokePort.remoteIp", "240.0.0.9"),
                             unchanged, "spokePort.remoteIp"),
    "port-name-too-long": Case("tunnel-ends-agree", edit("lab-spoke1-tunnel", "hubPort.name", "gre-spoke1-extra"),
                               edit("lab-spoke1-tunnel", "hubPort.name", "gre-spoke1-xtra"), "1-15 characters"),
    "overlay-outside-pool": Case("tunnel-ends-agree", edit("lab-spoke1-tunnel", "overlayPool", "240.0.1.0/24"),
                                 edit("lab-spoke1-tunnel", "overlayPool", "240.0.0.0/16"), "outside overlayPool"),
    "xfrm-name-wrong": Case("tunnel-ends-agree", both(edit("lab-spoke1-tunnel", "hubEnd.interfaceName", "ipsec21"),
                                                      edit("lab-spoke1-tunnel", "spokeEnd.interfaceName", "ipsec21")),
                            unchanged, "use ipsec20"),
    # wiring
    "spoke-without-tunnel": Case("hub-spoke-wiring", remove("lab-spoke2-tunnel"), unchanged, "has 0 tunnels"),
    "spoke-with-two-tunnels": Case("hub-spoke-wiring", copy_of("lab-spoke1-tunnel", "lab-spoke1-tunnel-2",
                                                               psk=secret(KEY_31 + "Y")),
                                   unchanged, "has 2 tunnels"),
    "overlay-shared": Case("hub-spoke-wiring", move_overlay("spoke2", "240.0.0.2"),
                           move_overlay("spoke2", "240.0.0.9"), "overlay address 240.0.0.2"),
    "hub-wan-mismatch": Case("hub-spoke-wiring", edit("lab-hub", "wanAddress", "192.168.1.11"),
                             unchanged, "hubEnd.localAddress"),
    "bridge-address-shared": Case("hub-spoke-wiring", edit("lab-spoke2", "bridgeAddress", "10.20.0.2/24"),
                                  edit("lab-spoke2", "bridgeAddress", "10.20.0.9/24"), "bridge address 10.20.0.2"),
    "spoke-count": Case("hub-spoke-wiring", edit("lab", "spokes", 3.0), edit("lab", "spokes", 2.0),
                        "plans 3 spokes"),
    # networks
    "libvirt-networks-overlap": Case("lab-subnets-distinct",
                                     edit("lab-networks-wan-spoke2", "addresses", ["192.168.2.0/23"]),
                                     edit("lab-networks-wan-spoke2", "addresses", ["192.168.3.0/25"]),
                                     "overlaps Network lab-networks-wan-spoke1"),
    "planned-subnets-overlap": Case("lab-subnets-distinct",
                                    edit("lab-networks", "subnets.wan-spoke2", "192.168.2.128/25"),
                                    edit("lab-networks", "subnets.wan-spoke2", "192.168.3.128/25"), "overlaps"),
    "overlay-pool-on-bridge": Case("lab-subnets-distinct", edit("lab", "overlayPool", "10.20.0.0/16"),
                                   edit("lab", "overlayPool", "240.0.0.0/16"), "bridge subnet 10.20.0.0/24"),
    "mgmt-forwards": Case("mgmt-network-separate", both(edit("lab-networks", "mgmtMode", "nat"),
                                                        edit("lab-networks-mgmt", "mode", "nat")),
                          both(edit("lab-networks", "mgmtMode", "isolated"), edit("lab-networks-mgmt", "mode", "none")),
                          "mode 'nat'"),
    "mgmt-mode-default": Case("mgmt-network-separate", edit("lab-networks-mgmt", "mode", delete=True),
                              unchanged, "set mode none"),
    "wan-address-in-mgmt": Case("mgmt-network-separate", edit("lab-spoke2", "wanAddress", "10.10.0.77"),
                                edit("lab-spoke2", "wanAddress", "192.168.3.77"), "inside the management subnet"),
    "mgmt-address-outside": Case("mgmt-network-separate", edit("lab-spoke1", "mgmtAddress", "192.168.2.50"),
                                 edit("lab-spoke1", "mgmtAddress", "10.10.0.50"), "outside the management subnet"),
    # domains and hubs
    "production-on-qemu": Case("production-needs-kvm", unchanged, domain_type("kvm"),
                               "set lab:domainType to kvm", stack="production"),
    "no-cloudinit": Case("domains-have-cloudinit", edit("lab-hub-domain", "cloudinit", delete=True),
                         unchanged, "no cloudinit disk"),
    "second-hub": Case("single-hub", copy_of("lab-hub", "lab-hub2", **SECOND_HUB), unchanged, "second hub"),
    "no-hub": Case("single-hub", remove("lab-hub"), unchanged, "no hub node"),
    # pack config: thresholds that the committed plan does not meet
    "min-key-length-64": Case("ipsec-keys-secret-and-long", unchanged,
                              both(edit("lab-spoke1-tunnel", "psk", secret(KEY_31 * 2 + "ab")),
                                   edit("lab-spoke2-tunnel", "psk", secret(KEY_31 * 2 + "cd"))), "fewer than 64",
                              config={"ipsec-keys-secret-and-long": {"minKeyLength": 64.0}}),
    "wan-allowance-8": Case("mtu-esp-never-fragments", unchanged, mtus(1430, 1388), "minus 8 allowance",
                            config={"mtu-esp-never-fragments": {"wanOverheadAllowance": 8.0}}),
}


# The cases start from the ci stack with pre-shared keys everywhere, whatever ci's own authentication:
# the certificate cases add the props the program gives certificate spokes (cert_spokes).
# The ci stack as these cases were written for: two spokes of the computed MTU (its third spoke and
# its remedies, docs/remedies.md, have cases of their own in tests/test_remedies.py).
TWO = {"spokes": 2, "asDeployedSpokes": [], "kernelGreSpokes": [], "tcpSpokes": [], "spokeWans": {}}
PSK = {**TWO, "auth": "psk", "pskSpokes": [], "certSpokes": [], "revokedSpokes": []}


def judged(case: Case, mutation: Mutation) -> list:
    resources = planned(case.stack, program_stack="ci", **PSK)
    mutation(resources)
    return evaluate(resources, case.stack, case.config)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_have_no_mandatory_violation(stack: str) -> None:
    found = evaluate(planned(stack), stack)
    assert [v for v in found if v.level == "mandatory"] == []


@pytest.mark.parametrize("name", CASES)
def test_modified_plan_triggers_exactly_its_policy(name: str) -> None:
    case = CASES[name]
    found = judged(case, case.violate)
    assert mandatory(found) == {case.policy}
    messages = [v.message for v in found if v.policy == case.policy]
    assert any(case.message in m for m in messages), messages
    assert all(v.urn and v.urn.startswith(f"urn:pulumi:{case.stack}::lab::") for v in found), found


@pytest.mark.parametrize("name", CASES)
def test_compliant_twin_passes(name: str) -> None:
    case = CASES[name]
    assert mandatory(judged(case, case.comply)) == set()


@pytest.mark.parametrize("name", ["ipsec-crypto-allowlist", "ipsec-cert-keys-allowed", "mtu-esp-never-fragments",
                                  "tunnel-ends-agree", "hub-spoke-wiring", "lab-subnets-distinct",
                                  "mgmt-network-separate",
                                  "ipsec-keys-secret-and-long", "ipsec-keys-and-ids-unique",
                                  "ipsec-keys-never-in-plaintext", "production-needs-kvm",
                                  "domains-have-cloudinit", "single-hub"])
def test_every_mandatory_policy_has_a_case(name: str) -> None:
    policy = next(p for p in lab_policies.POLICIES if p.name == name)
    assert policy.enforcement_level == EnforcementLevel.MANDATORY
    assert any(case.policy == name for case in CASES.values())


@pytest.mark.parametrize("config, over", [
    ({}, False),  # ci: 3 VMs x 256 MiB, 3 vCPUs
    ({"maxMemoryMib": 512.0}, True),
    ({"maxMemoryMib": 768.0, "maxVcpus": 3.0}, False),
    ({"maxVcpus": 2.0}, True),
])
def test_capacity_is_advisory_and_configurable(config: dict, over: bool) -> None:
    found = evaluate(planned("ci", **TWO), "ci", {"capacity-budget": config})
    assert mandatory(found) == set()
    assert any(v.policy == "capacity-budget" and v.level == "advisory" for v in found) == over


def test_scale_stack_is_over_the_default_budget() -> None:
    found = evaluate(planned("scale"), "scale")
    assert {v.message.split(",")[0] for v in found if v.policy == "capacity-budget"} == {
        "the stack's 101 VMs need 25856 MiB of memory", "the stack's 101 VMs need 101 vCPUs"}


@pytest.mark.parametrize("stack, production", [
    ("production", True), ("prod", True), ("lab-prod", True), ("Prod-eu", True), ("prod2", True),
    ("dev", False), ("ci", False), ("scale", False), ("nonprod", False), ("product-demo", False),
])
def test_production_stack_names(stack: str, production: bool) -> None:
    pattern = lab_policies.capacity.KVM_SCHEMA.properties["productionStackPattern"]["default"]
    assert lab_policies.capacity.is_production(stack, pattern) == production


def test_a_certificate_tunnel_needs_no_pre_shared_key() -> None:
    """Without auth a Tunnel is a PSK tunnel, as before certificates: its psk stays required."""
    resources = planned("ci", **PSK)
    cert_spokes("ecdsa-p256", 1)(resources)
    edit("lab-spoke1-tunnel", "psk", delete=True)(resources)
    assert mandatory(evaluate(resources, "ci")) == set()
    edit("lab-spoke2-tunnel", "psk", delete=True)(resources)
    found = evaluate(resources, "ci")
    assert mandatory(found) == {"ipsec-keys-secret-and-long"}
    assert [v.message for v in found if v.level == "mandatory"] == [
        "Tunnel lab-spoke2-tunnel: has no pre-shared key (psk): derive one per tunnel from lab:masterSecret."]


@pytest.mark.parametrize("overrides", [
    {"certSpokes": [1], "revokedSpokes": [1], "certKey": "ecdsa-p256"},
    {"auth": "cert", "certKey": "rsa-2048", "idDomain": "lab.example"},
    {"auth": "cert", "pskSpokes": [2], "certKey": "ecdsa-p384"},
])
def test_certificate_plans_pass_with_the_props_the_policy_reads(overrides: dict[str, Any]) -> None:
    config = {**PSK, **overrides}
    resources = planned("ci", **config)
    assert mandatory(evaluate(resources, "ci")) == set()
    lab = named(resources, "lab").inputs
    assert (lab["auth"], lab["certKey"], lab["revokedSpokes"]) == (
        config["auth"], config["certKey"], [float(n) for n in config["revokedSpokes"]])
    for spoke in (1, 2):
        tunnel = named(resources, f"lab-spoke{spoke}-tunnel").inputs
        cert = spoke in config["certSpokes"] or (config["auth"] == "cert" and spoke not in config["pskSpokes"])
        assert (tunnel.get("auth"), tunnel.get("certKey"), "psk" in tunnel) == (
            ("cert", config["certKey"], False) if cert else (None, None, True)), spoke


def test_a_weak_key_type_in_a_certificate_plan_is_refused() -> None:
    """The program never declares one (lab:certKey refuses it): the pack still would."""
    resources = planned("ci", **{**PSK, "auth": "cert"})
    for r in resources:
        if r.typ in (LAB, TUNNEL):
            r.inputs["certKey"] = "rsa-1024"
    found = evaluate(resources, "ci")
    assert mandatory(found) == {"ipsec-cert-keys-allowed"}
    assert sorted(v.message.split(":")[0] for v in found if v.level == "mandatory") == [
        "Lab lab", "Tunnel lab-spoke1-tunnel", "Tunnel lab-spoke2-tunnel"]


def test_psk_plans_carry_no_certificate_props() -> None:
    """What the pack's certificate policy relies on: a PSK stack's Lab and Tunnels have no auth."""
    for r in planned("ci", **PSK):
        if r.typ in (LAB, TUNNEL):
            assert not {"auth", "certKey", "revokedSpokes"} & set(r.inputs), r.name


# --- the pack's own tables, checked against libreswan, the field notes and the program ---

@pytest.mark.parametrize("kind, line", [  # all accepted by Debian 12's `ipsec algparse -v2`
    ("ike", "aes256-sha2;modp2048"), ("ike", "aes_gcm128-null"), ("ike", "aes_gcm256-sha2"),
    ("ike", "chacha20_poly1305-sha2;curve25519"), ("ike", "aes256-sha2_256;modp2048+ecp256"),
    ("ike", "aes256-sha2;dh31"), ("esp", "aes_gcm128-null"), ("esp", "aes128"), ("esp", "aes_gcm_c_256-null"),
    ("esp", "aes_ctr128-sha2_256"), ("esp", "aes_gcm_16_192-null,aes256-sha2_512"),
])
def test_strong_proposals_pass(kind: str, line: str) -> None:
    assert [p.problems for p in lab_policies.ipsec.parse_proposals(line, kind)] == [()] * len(line.split(","))


@pytest.mark.parametrize("kind, line, problem", [
    ("ike", "3des-sha2", "3DES"), ("ike", "aes256-sha1", "SHA-1"), ("ike", "aes256-md5", "MD5"),
    ("ike", "aes256-sha2;modp768", "below 2048"), ("ike", "aes256-sha2;dh22", "deprecated"),
    ("ike", "aes256", "explicit SHA-2"), ("ike", "camellia256-sha2", "not on the allowlist"),
    ("esp", "null-sha2", "no encryption"), ("esp", "aes_gcm128-sha2", "needs integrity null"),
    ("esp", "aes128-null", "only allowed with an AEAD"), ("esp", "aes_gcm128-null,des-sha2", "single DES"),
    ("esp", "", "is empty"), ("esp", "aes 128", "malformed"),
])
def test_weak_proposals_fail(kind: str, line: str, problem: str) -> None:
    problems = [text for p in lab_policies.ipsec.parse_proposals(line, kind) for text in p.problems]
    assert any(problem in text for text in problems), problems


@pytest.mark.parametrize("wan, nat_t, esp, tunnel, inner_no_key, inner_key", [
    (1500, True, "aes_gcm128-null", 1438, 1400, 1396),
    (1500, False, "aes_gcm128-null", 1446, 1408, 1404),
    (1492, True, "aes_gcm128-null", 1430, 1392, 1388),
    (1500, True, "chacha20_poly1305-null", 1438, 1400, 1396),
    (1500, True, "aes256-sha2_256", 1422, 1384, 1380),
    (1500, True, "aes256", 1406, 1368, 1364),  # no integrity given: sized for sha2_512
])
def test_mtu_table(wan: int, nat_t: bool, esp: str, tunnel: int, inner_no_key: int, inner_key: int) -> None:
    limit = lab_policies.ipsec.tunnel_mtu_limit(wan, [esp], nat_t)
    assert (limit, limit - lab_policies.ipsec.gre_overhead(False), limit - lab_policies.ipsec.gre_overhead(True)) == (
        tunnel, inner_no_key, inner_key)


@pytest.mark.parametrize("esp", ["aes_gcm128-null", "aes_gcm256-null", "chacha20_poly1305-null", "aes128-sha2",
                                 "aes256-sha2_384", "aes_cbc256-sha2_512", "aes_ctr128-sha2_256",
                                 "aes256-sha2_512,aes_gcm128-null"])
@pytest.mark.parametrize("wan", [1280, 1492, 1500, 9000])
def test_pack_and_program_agree_on_esp_overhead(esp: str, wan: int) -> None:
    from lablib.crypto import parse_proposals
    from lablib.mtu import plan_mtu
    for nat_t in (True, False):
        assert lab_policies.ipsec.tunnel_mtu_limit(wan, [esp], nat_t) == plan_mtu(
            wan, parse_proposals(esp, "esp"), nat_t=nat_t, gre_key=False).tunnel_mtu


# --- how pulumi-policy 1.21 delivers resources: the analyzer service itself ---

def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def analyze(resources: list[Recorded], stack: str, monkeypatch: pytest.MonkeyPatch, keep_secrets: bool = True,
            config: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, int, str]]:
    """(policy, enforcement, message) of every diagnostic the analyzer service returns for this plan.

    Like the engine: Analyze gets each resource's inputs; AnalyzeStack gets OUTPUTS, and a
    component's outputs are only what it passed to register_outputs (stood in for here).
    """
    monkeypatch.setattr(analyzer, "deserialize_properties", analyzer.deserialize_properties)  # restored after
    if keep_secrets:
        lab_policies.plumbing.keep_secret_markers()
    lab_policies.plumbing.forget_recorded_inputs()
    service = analyzer._PolicyAnalyzerServicer("gre-ipsec-lab", "0.1.0", lab_policies.POLICIES,
                                               EnforcementLevel.MANDATORY)
    service.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
        name: analyzer_pb2.PolicyConfig(properties=struct(values)) for name, values in (config or {}).items()}),
        None)
    diagnostics = []
    for r in resources:
        request = analyzer_pb2.AnalyzeRequest(type=r.typ, name=r.name, urn=urn(stack, r), properties=struct(r.inputs))
        diagnostics += service.Analyze(request, None).diagnostics
    stack_resources = [analyzer_pb2.AnalyzerResource(
        type=r.typ, name=r.name, urn=urn(stack, r),
        properties=struct(r.inputs if r.custom else {"registeredOutput": "only"})) for r in resources]
    diagnostics += service.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=stack_resources), None).diagnostics
    return [(d.policyName, d.enforcementLevel, d.message) for d in diagnostics]


def test_stock_deserializer_drops_the_secret_marker() -> None:
    tunnel = named(planned("ci", **TWO), "lab-spoke1-tunnel")
    assert isinstance(deserialize_properties(tunnel.inputs)["psk"], str)  # what Analyze hands a policy
    assert isinstance(lab_policies.plumbing.deserialize_inputs(tunnel.inputs)["psk"], pulumi_policy.Secret)


def test_analyzer_service_passes_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    found = analyze(planned("ci", **TWO), "ci", monkeypatch)
    assert [d for d in found if d[1] == analyzer_pb2.MANDATORY] == []


def test_without_secret_markers_every_key_looks_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    found = analyze(planned("ci", **TWO), "ci", monkeypatch, keep_secrets=False)
    plain = [m for policy, _level, m in found if policy == "ipsec-keys-secret-and-long"]
    assert len(plain) == 4  # both tunnels' psk and both hub sides' SSH key


def test_analyzer_service_stack_policies_see_recorded_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    resources = planned("ci", **TWO)
    CASES["psk-shared"].violate(resources)
    found = analyze(resources, "ci", monkeypatch, config={"capacity-budget": {"maxVcpus": 2}})
    assert {(policy, level) for policy, level, _m in found} == {
        ("ipsec-keys-and-ids-unique", analyzer_pb2.MANDATORY), ("capacity-budget", analyzer_pb2.ADVISORY)}


def test_analyzer_info_lists_levels_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    service = analyzer._PolicyAnalyzerServicer("gre-ipsec-lab", "0.1.0", lab_policies.POLICIES,
                                               EnforcementLevel.MANDATORY)
    info = {p.name: p for p in service.GetAnalyzerInfo(None, None).policies}
    assert len(info) == 14
    assert [n for n, p in info.items() if p.enforcementLevel == analyzer_pb2.ADVISORY] == ["capacity-budget"]
    assert info["ipsec-keys-secret-and-long"].configSchema.properties["minKeyLength"]["default"] == 32


def test_pack_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    built = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    monkeypatch.setattr(analyzer, "deserialize_properties", analyzer.deserialize_properties)
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert built["policies"] is lab_policies.POLICIES
    assert analyzer.deserialize_properties is lab_policies.plumbing.deserialize_inputs
    project = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    pins = (ROOT / "policy" / "requirements.txt").read_text().split()
    assert {"pulumi-policy==1.21.0", "pulumi==3.272.0"} <= set(pins)
