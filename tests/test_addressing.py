"""The address plan, computed with ipaddress from config."""
import ipaddress

from harness import parse_lab


def plan_for(**overrides: object):
    return parse_lab(**overrides).plan


def test_default_plan_matches_the_original_deployment() -> None:
    plan = plan_for(spokes=2)
    assert str(plan.hub.wan_address) == "192.168.1.10"
    assert [str(s.wan_address) for s in plan.spokes] == ["192.168.2.10", "192.168.3.10"]
    assert [str(s.wan_gateway) for s in plan.spokes] == ["192.168.2.1", "192.168.3.1"]
    assert str(plan.hub.overlay_address) == "240.0.0.1"
    assert [str(s.overlay_address) for s in plan.spokes] == ["240.0.0.2", "240.0.0.3"]
    assert [s.ike_id for s in plan.sites] == ["@hub", "@spoke1", "@spoke2"]
    assert all(s.behind_nat for s in plan.spokes) and not plan.hub.behind_nat


def test_routed_spokes_are_not_behind_nat() -> None:
    plan = plan_for(spokes=3, routedSpokes=[2])
    assert [s.behind_nat for s in plan.spokes] == [True, False, True]


def test_largest_plan_is_unique_and_fits_interface_names() -> None:
    plan = plan_for(spokes=250)
    for attribute in ("wan_subnet", "overlay_address", "bridge_address", "mgmt_address", "ike_id", "gre_port"):
        values = [getattr(site, attribute) for site in plan.sites]
        assert len(set(values)) == len(values), attribute
    assert max(len(site.gre_port) for site in plan.sites) <= 15
    assert plan.spokes[-1].wan_subnet == ipaddress.IPv4Network("192.168.251.0/24")
    assert all(site.mgmt_address in plan.mgmt_subnet and site.mgmt_address != plan.mgmt_gateway
               for site in plan.sites)


def test_custom_site_prefix() -> None:
    plan = plan_for(spokes=3, spokeSubnetPool="172.16.0.0/24", siteSubnetPrefix=28)
    assert [str(s.wan_subnet) for s in plan.spokes] == ["172.16.0.32/28", "172.16.0.48/28", "172.16.0.64/28"]
    assert str(plan.spokes[0].wan_address) == "172.16.0.42"
