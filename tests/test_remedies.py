"""Per-spoke remedies and WANs (lablib/remedies.py): the config keys, the MTUs they give, what the VMs get."""
from __future__ import annotations

import dataclasses
import json

import pytest

from harness import parse_lab
from lablib import names, payload, report
from lablib.config import ConfigError
from lablib.crypto import parse_proposals
from lablib.mtu import gre_overhead, plan_mtu, plan_site_mtus
from lablib.tunnel import spoke_tunnel
from lablib.wan import WanImpairment, from_declared

GCM = parse_proposals("aes_gcm128-null", "esp")


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("asDeployedSpokes", [3], "spoke numbers from 1 to 2"),
    ("asDeployedSpokes", [1, 1], "distinct"),
    ("kernelGreSpokes", [0], "spoke numbers from 1 to 2"),
    ("spokeWans", "[1492]", "must be an object of spoke numbers"),
    ("spokeWans", '{"3": {"mtu": 1492}}', "no spoke number from 1 to 2"),
    ("spokeWans", '{"01": {"mtu": 1492}}', "no spoke number"),
    ("spokeWans", '{"spoke1": {"mtu": 1492}}', "no spoke number"),
    ("spokeWans", '{"1": 1492}', "gives spoke 1 1492"),
    ("spokeWans", '{"1": {}}', "gives spoke 1 {}"),
    ("spokeWans", '{"1": {"mtu": 1279}}', "mtu 1279: it must be an integer from 1280 to 9000"),
    ("spokeWans", '{"1": {"mtu": 9001}}', "from 1280 to 9000"),
    ("spokeWans", '{"1": {"mtu": 1492.0}}', "must be an integer"),
    ("spokeWans", '{"1": {"mtu": true}}', "must be an integer"),
    ("spokeWans", '{"1": {"mtu": "1492"}}', "must be an integer"),
    ("spokeWans", '{"1": {"MTU": 1492}}', "unknown field 'MTU'"),
])
def test_bad_remedy_and_wan_values_name_the_key(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed) as caught:
        parse_lab(**{key: value})
    assert caught.value.key == key


def test_a_spoke_has_one_remedy() -> None:
    with pytest.raises(ConfigError, match="asDeployedSpokes.*lists spoke.*kernelGreSpokes lists too"):
        parse_lab(asDeployedSpokes=[1, 2], kernelGreSpokes=[2])


def test_without_the_keys_every_site_has_the_labs_one_plan() -> None:
    spec = parse_lab(spokes=3)
    assert spec.spoke_mtus == () and spec.mtu == plan_mtu(1500, GCM, nat_t=True, gre_key=True)
    assert all(spec.mtu_of(site) == spec.mtu for site in spec.plan.sites)
    assert spec.config.spoke_remedies == () and spec.config.remedy_of(1) == "computed-mtu"


def test_a_smaller_spoke_wan_lowers_the_whole_segment_but_only_its_own_tunnel() -> None:
    spec = parse_lab(spokes=3, spokeWans='{"2": {"mtu": 1492}, "3": {"mtu": 1500}}')
    adsl = plan_mtu(1492, GCM, nat_t=True, gre_key=True)
    hub, spoke1, spoke2, spoke3 = (spec.mtu_of(site) for site in spec.plan.sites)
    assert (hub.wan_mtu, hub.tunnel_mtu, hub.inner_mtu) == (1500, 1438, adsl.inner_mtu)
    assert spoke1 == spoke3 == hub  # "3": 1500 is lab:wanMtu: nothing differs
    assert (spoke2.wan_mtu, spoke2.tunnel_mtu, spoke2.inner_mtu) == (1492, adsl.tunnel_mtu, adsl.inner_mtu)
    assert spec.config.spoke_wan_mtus == ((2, 1492),)


def test_a_larger_spoke_wan_keeps_the_hubs_path() -> None:
    hub, spokes = plan_site_mtus(1500, {1: 9000}, {}, GCM, nat_t=True, gre_key=False)
    assert spokes[1] == dataclasses.replace(hub, wan_mtu=9000)


def test_an_as_deployed_spoke_gets_the_wan_mtu_and_the_hubs_bridge_takes_its_frames() -> None:
    spec = parse_lab(spokes=3, asDeployedSpokes=[2], spokeWans='{"2": {"mtu": 1492}}')
    hub, spoke1, spoke2, _ = (spec.mtu_of(site) for site in spec.plan.sites)
    assert (spoke2.tunnel_mtu, spoke2.inner_mtu) == (1492, 1492 - gre_overhead(True))
    # The failing spoke does not lower the segment: the others keep the 1500-byte WAN's MTUs.
    assert spoke1 == dataclasses.replace(hub, bridge_mtu=0) and hub.inner_mtu == 1396
    assert hub.bridge_mtu == hub.bridge_device_mtu == 1492 - gre_overhead(True)


def test_an_as_deployed_spoke_fragments_on_both_ends_and_the_others_do_not() -> None:
    spec = parse_lab(spokes=2, asDeployedSpokes=[2])
    deployed, computed = (spoke_tunnel(spec, spoke) for spoke in reversed(spec.plan.spokes))
    assert deployed.as_deployed and not computed.as_deployed
    script = payload.lab_network_script(spec, deployed.spoke, deployed)
    assert "mtu lock 1500" in script and "options:df_default=false" in script and "mtu_request=1458" in script
    assert "ip link set ipsec20 mtu 1500" in script
    other = payload.lab_network_script(spec, computed.spoke, computed)
    assert "lock" not in other and "df_default" not in other and "mtu_request=1396" in other
    hub = payload.lab_network_script(spec, spec.plan.hub, None)
    assert "mtu_request=1458" in hub
    assert "ip route replace 10.20.0.0/24 dev br0 proto kernel scope link src 10.20.0.1 mtu 1396" in hub
    assert f"ip route replace {deployed.spoke.overlay_address}/32 dev ipsec20 src 240.0.0.1 mtu lock 1500" in hub
    assert f"ip route replace {deployed.spoke.bridge_address.ip}/32 dev br0 src 10.20.0.1 mtu 1458" in hub
    side = payload.hub_side(spec, deployed)
    assert "options:df_default=false" in side.up_script and "mtu lock 1500" in side.up_script
    assert f"ip route del {deployed.spoke.overlay_address}/32" in side.down_script
    assert "df_default" in side.check_script and "mtu lock 1500" in side.check_script
    plain = payload.hub_side(spec, computed)
    assert "df_default" not in plain.up_script and "mtu lock" not in plain.up_script


def test_a_kernel_gre_spoke_keeps_the_wan_mtu_on_its_tunnel_and_sizes_t0() -> None:
    spec = parse_lab(spokes=2, kernelGreSpokes=[2], spokeWans='{"2": {"mtu": 1492}}')
    tunnel = spoke_tunnel(spec, spec.plan.spokes[1])
    adsl = plan_mtu(1492, GCM, nat_t=True, gre_key=True)
    assert (tunnel.mtu.tunnel_mtu, tunnel.mtu.inner_mtu) == (1492, adsl.inner_mtu) == (1492, spec.mtu.inner_mtu)
    assert tunnel.route_lock and not tunnel.as_deployed and tunnel.spoke_port.name == "t0" and tunnel.hub_port.df
    script = payload.lab_network_script(spec, tunnel.spoke, tunnel)
    assert "ip link add t0 type gretap local 240.0.0.3 remote 240.0.0.1 key 2" in script
    assert f"ip link set t0 mtu {adsl.inner_mtu} up" in script and "mtu lock 1492" in script
    assert "datapath_type=netdev" in script and "type=gre" not in script and "ip_gre tun" in script
    # The hub serves it through its OVS GRE port, as any other spoke.
    assert payload.hub_side(spec, tunnel).up_script == payload.hub_side(
        parse_lab(spokes=2, spokeWans='{"2": {"mtu": 1492}}'), tunnel).up_script


def test_a_lab_without_remedies_renders_as_before() -> None:
    """The scripts of a lab that declares no remedy carry nothing of them (existing stacks keep their plan)."""
    spec = parse_lab(spokes=2)
    tunnel = spoke_tunnel(spec, spec.plan.spokes[0])
    for script in (payload.lab_network_script(spec, spec.plan.hub, None),
                   payload.lab_network_script(spec, tunnel.spoke, tunnel),
                   payload.hub_side(spec, tunnel).up_script):
        assert "mtu lock" not in script and "df_default" not in script and "proto kernel" not in script
    assert "df" not in tunnel.hub_port.as_props()


def test_the_mtu_policy_passes_an_as_deployed_spoke_except_in_a_production_stack() -> None:
    from policy_harness import evaluate, planned

    def mtu_violations(stack: str) -> list[str]:
        resources = planned(stack, "dev", asDeployedSpokes=[1])
        return [v.message for v in evaluate(resources, stack) if v.policy == "mtu-esp-never-fragments"]
    assert mtu_violations("dev") == []
    found = mtu_violations("prod-eu")
    assert found and all("is as-deployed" in message and "'prod-eu'" in message for message in found)
    assert any("spoke1-tunnel" in message for message in found)


def test_the_mtu_policy_passes_a_kernel_gre_spoke_in_production_too() -> None:
    """Its tunnel has the WAN MTU, but only GRE of t0's size enters it."""
    from policy_harness import evaluate, planned
    resources = planned("prod-eu", "dev", kernelGreSpokes=[1])
    assert [v.message for v in evaluate(resources, "prod-eu") if v.policy == "mtu-esp-never-fragments"] == []


@pytest.mark.parametrize(("wan", "allowed"), [
    ({"delayMs": -1}, "delayMs -1: it must be an integer from 0 to 10000"),
    ({"delayMs": 10.5}, "must be an integer"),
    ({"lossPct": 101}, "lossPct 101: it must be a number from 0 to 100"),
    ({"lossPct": "1"}, "must be a number"),
    ({"fragDropPct": True}, "must be a number"),
    ({"rate": "fast"}, "'fast' is not a rate like 512kbit"),
    ({"rate": 8}, "must be a string like 8mbit"),
    ({"udpBlocked": 1}, "udpBlocked 1: it must be true or false"),
    ({"jitterMs": 5}, "jitterMs: jitter needs a delay"),
    ({"delayMs": 5, "jitterMs": 10}, "jitterMs: 10 ms is more than the delay 5 ms"),
])
def test_bad_wan_impairments_name_the_key_and_the_field(wan: dict, allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed) as caught:
        parse_lab(spokeWans=json.dumps({"1": wan}))
    assert caught.value.key == "spokeWans"


def test_a_declared_wan_is_shaped_at_boot_and_named_in_the_outputs() -> None:
    """netem in the spoke's lab-network (every boot); the rest (fragments, UDP) is the host's, which
    `labctl up` sets from the nodes output; a spoke without one is untouched."""
    spec = parse_lab(spokes=2, spokeWans='{"2": {"delayMs": 40, "jitterMs": 10, "lossPct": 0.5, "rate": "8mbit",'
                                         ' "fragDropPct": 30, "udpBlocked": true}}')
    declared = spec.config.wan_impairment_of(2)
    assert declared == WanImpairment(40, 10, 0.5, "8mbit", 30, True) and spec.config.wan_impairment_of(1) == WanImpairment()
    spoke1, spoke2 = spec.plan.spokes
    script = payload.lab_network_script(spec, spoke2, spoke_tunnel(spec, spoke2))
    assert f"tc qdisc replace dev {names.WAN_INTERFACE} root netem delay 40ms 10ms loss 0.5% rate 8mbit" in script
    assert "netem" not in payload.lab_network_script(spec, spoke1, spoke_tunnel(spec, spoke1))
    outputs = report.nodes(spec)
    assert outputs["spoke2"]["wanImpairment"] == {"delayMs": 40, "jitterMs": 10, "lossPct": 0.5, "rate": "8mbit",
                                                  "fragDropPct": 30, "udpBlocked": True}
    assert "wanImpairment" not in outputs["spoke1"] and "wanImpairment" not in outputs["hub"]
    assert from_declared(outputs["spoke2"]["wanImpairment"]) == declared
