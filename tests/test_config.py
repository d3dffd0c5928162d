"""Every bad stack config value is rejected with one error naming key, value and rule."""
import ipaddress

import pytest

from harness import mock_secrets, stack_values
from lablib.config import ConfigError, parse_config

SECRETS = mock_secrets()


def parse(**overrides: object):
    return parse_config(stack_values(overrides, secrets=False), SECRETS)


def test_defaults_give_the_original_deployments_shape() -> None:
    spec = parse()
    config = spec.config
    assert config.addresses.spokes == 2 and len(spec.plan.spokes) == 2
    assert config.addresses.hub_subnet == ipaddress.IPv4Network("192.168.1.0/24")
    assert config.addresses.overlay_pool == ipaddress.IPv4Network("240.0.0.0/24")
    assert (config.ike, config.esp) == ("aes256-sha2;dh19", "aes_gcm128-null")
    assert spec.mtu.tunnel_mtu == 1438 and spec.mtu.wan_mtu == config.wan_mtu == 1500


def test_proposal_lists_are_written_as_libreswan_reads_them() -> None:
    """People put blanks after commas (and write capitals); libreswan's file parser refuses the blank."""
    config = parse(ike=" aes256-sha2;dh19 , AES128-SHA2;DH19", esp="aes_gcm128-null,\u00a0aes256-sha2").config
    assert (config.ike, config.esp) == ("aes256-sha2;dh19,aes128-sha2;dh19", "aes_gcm128-null,aes256-sha2")


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("spokes", 0, "integer from 1 to 250"),
    ("spokes", 251, "integer from 1 to 250"),
    ("spokes", "two", "integer from 1 to 250"),
    ("spokes", "2.5", "integer from 1 to 250"),
    ("routedSpokes", [3], "spoke numbers from 1 to 2"),
    ("routedSpokes", [1, 1], "distinct"),
    ("vtiSpokes", [3], "spoke numbers from 1 to 2"),
    ("xfrmSpokes", [0], "spoke numbers from 1 to 2"),
    ("vtiSpokes", [2, 2], "distinct"),
    ("hubSubnet", "192.168.1.5/24", "CIDR"),
    ("hubSubnet", "192.168.1.0/29", "too small"),
    ("hubSubnet", "192.168.2.0/24", "overlaps"),
    ("mgmtSubnet", "10.20.0.0/25", "overlaps"),
    ("bridgeSubnet", "10.10.0.0/16", "overlaps"),
    ("overlayPool", "240.0.0.0/31", "too small"),
    ("siteSubnetPrefix", 29, "from 16 to 28"),
    ("interfaceMode", "gre", "one of vti, xfrm"),
    ("wanMtu", 1279, "from 1280 to 9000"),
    ("wanMtu", 9001, "from 1280 to 9000"),
    ("ike", "3des-sha1", "weak"),
    ("ike", "aes256-md5", "weak"),
    ("ike", "aes256-sha2;modp1024", "weak"),
    ("esp", "aes256-sha1", "weak"),
    ("esp", "null-sha2", "weak"),
    ("esp", "aes_gcm128-sha2", "AEAD"),
    ("esp", "serpent-sha2", "unknown"),
    ("domainType", "xen", "one of kvm, qemu"),
    ("greKey", "maybe", "true or false"),
    ("image", "", "cloud image"),
    ("sshPublicKey", "", "OpenSSH public key"),
    ("sshPublicKey", "hunter2", "OpenSSH public key"),
    ("poolPath", "relative/dir", "absolute"),
    ("tunnelMark", 0, "from 1 to 65535"),
    ("retransmitTimeout", 9, "from 10 to 600"),
    ("retransmitTimeout", "30s", "integer"),
])
def test_bad_value_names_key_value_and_rule(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed) as caught:
        parse(**{key: value})
    if allowed == "overlaps":  # either subnet of the pair may be the one to change: both are named
        assert key in str(caught.value)
    else:
        assert caught.value.key == key
        assert f"lab:{key}" in str(caught.value)


def test_overlay_pool_too_small_for_the_spoke_count() -> None:
    parse(spokes=5, overlayPool="240.0.0.0/29")  # 6 sites fit in .1-.6
    with pytest.raises(ConfigError, match="overlayPool.*too small: 6 spokes"):
        parse(spokes=6, overlayPool="240.0.0.0/29")


def test_spoke_pool_too_small_for_the_spoke_count() -> None:
    with pytest.raises(ConfigError, match="spokeSubnetPool.*too small"):
        parse(spokes=3, spokeSubnetPool="192.168.0.0/23", hubSubnet="10.1.0.0/24")


@pytest.mark.parametrize("key", ["masterSecret", "sshPrivateKey"])
def test_missing_secret_is_named_and_its_value_never_shown(key: str) -> None:
    with pytest.raises(ConfigError, match=f"lab:{key}.*missing"):
        parse_config(stack_values(secrets=False), {**SECRETS, key: None})


def test_weak_master_secret_error_hides_the_value() -> None:
    with pytest.raises(ConfigError, match="at least 16") as caught:
        parse_config(stack_values(secrets=False), {**SECRETS, "masterSecret": "short-secret"})
    assert "short-secret" not in str(caught.value)


def test_largest_lab_is_valid() -> None:
    assert len(parse(spokes=250).plan.spokes) == 250


def test_a_spoke_listed_for_both_interface_modes_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError, match="vtiSpokes.*xfrmSpokes"):
        parse(vtiSpokes=[1, 2], xfrmSpokes=[2])


def test_per_spoke_interface_modes_override_the_default_only_where_listed() -> None:
    config = parse(spokes=3, interfaceMode="xfrm", vtiSpokes=[2], xfrmSpokes=[1]).config
    assert [config.mode_of(n) for n in (1, 2, 3)] == ["xfrm", "vti", "xfrm"]
    assert [config.interface_of(n) for n in (1, 2, 3)] == ["ipsec20", "ipsec0", "ipsec20"]
    assert config.spoke_modes == ((2, "vti"),)  # listing a spoke under the default mode changes nothing
