"""Authentication keys (issue 18): auth, pskSpokes, certSpokes, certKey, caValidUntil, revokedSpokes,
idDomain. Every bad value is one ConfigError naming its key; the defaults plan as before."""
from __future__ import annotations

import datetime

import pytest

from harness import mock_secrets, stack_values
from lablib import crypto, names
from lablib.auth import AUTH_KEYS
from lablib.config import PLAIN_KEYS, ConfigError, LabConfig, parse_config

SECRETS = mock_secrets()


def parse(**overrides: object):
    return parse_config(stack_values(overrides, secrets=False), SECRETS)


def refused(key: str, match: str, **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as caught:
        parse(**overrides)
    assert caught.value.key == key and f"lab:{key}" in str(caught.value)
    return caught.value


def test_the_keys_are_read() -> None:
    assert set(AUTH_KEYS) <= set(PLAIN_KEYS)


def test_defaults_plan_as_before_certificates() -> None:
    spec = parse(spokes=3)
    config = spec.config
    assert [site.ike_id for site in spec.plan.sites] == ["@hub", "@spoke1", "@spoke2", "@spoke3"]
    assert [config.auth_of(n) for n in (1, 2, 3)] == ["psk"] * 3 and not config.uses_certs
    assert (config.auth, config.spoke_auths, config.cert_key, config.ca_valid_until, config.revoked_spokes) == (
        "psk", (), "ecdsa-p256", datetime.date(2036, 12, 31), frozenset())
    assert spec.config.addresses.id_domain == ""


def test_lab_config_defaults_keep_existing_constructions_working() -> None:
    config = parse().config
    fields = {name: getattr(config, name) for name in ("addresses", "wan_mtu", "interface_mode", "tunnel_mark",
                                                        "ike", "esp", "gre_key", "dpd_delay", "boot", "hub_boot",
                                                        "domain_type", "memory_mib", "vcpus", "install_packages",
                                                        "pool_path", "ssh_public_key")}
    assert LabConfig(**fields) == config


def test_per_spoke_auth_overrides_the_default_only_where_listed() -> None:
    config = parse(spokes=4, auth="psk", certSpokes=[2, 4], pskSpokes=[1]).config
    assert [config.auth_of(n) for n in (1, 2, 3, 4)] == ["psk", "cert", "psk", "cert"]
    assert config.spoke_auths == ((2, "cert"), (4, "cert")) and config.uses_certs
    config = parse(spokes=3, auth="cert", pskSpokes=[3], certSpokes=[1]).config
    assert [config.auth_of(n) for n in (1, 2, 3)] == ["cert", "cert", "psk"]
    assert config.spoke_auths == ((3, "psk"),) and config.uses_certs


def test_a_cert_lab_with_every_spoke_on_psk_still_uses_certs() -> None:
    """auth is the hub's too: the hub of an all-cert default keeps its certificate."""
    assert parse(spokes=1, auth="cert", pskSpokes=[1]).config.uses_certs


@pytest.mark.parametrize("key_type", list(crypto.CERT_KEYS))
def test_every_allowed_key_type_is_accepted(key_type: str) -> None:
    assert parse(certKey=key_type, auth="cert").config.cert_key == key_type


def test_revoked_cert_spokes_are_kept() -> None:
    config = parse(spokes=3, certSpokes=[1, 3], revokedSpokes=[3]).config
    assert config.revoked_spokes == frozenset({3})
    assert parse(spokes=3, auth="cert", revokedSpokes=[1, 2]).config.revoked_spokes == frozenset({1, 2})


def test_ca_valid_until_tomorrow_is_accepted() -> None:
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    assert parse(caValidUntil=tomorrow.isoformat()).config.ca_valid_until == tomorrow


@pytest.mark.parametrize("domain", ["lab.example", "example", "a-b.c0.x", "0.lab", "x" * 63 + ".lab"])
def test_id_domain_gives_every_site_a_dns_id(domain: str) -> None:
    spec = parse(spokes=2, idDomain=domain)
    assert [site.ike_id for site in spec.plan.sites] == [f"@hub.{domain}", f"@spoke1.{domain}",
                                                         f"@spoke2.{domain}"]
    assert names.ike_id("spoke1", domain) == f"@spoke1.{domain}" and names.ike_id("spoke1") == "@spoke1"


def test_the_longest_id_domain_that_fits_253_characters() -> None:
    """spoke250.<domain> may have 253 characters; the check counts the longest site name."""
    labels = ["a" * 63, "b" * 63, "c" * 63]
    fits = ".".join([*labels, "d" * (253 - len("spoke250.") - 3 * 64)])
    assert len(f"spoke250.{fits}") == 253
    assert parse(spokes=250, idDomain=fits).plan.spokes[-1].ike_id == f"@spoke250.{fits}"
    refused("idDomain", "more than 253", spokes=250, idDomain=fits + "d")
    assert parse(spokes=99, idDomain=fits + "d").config.addresses.id_domain == fits + "d"  # spoke99: shorter


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("auth", "x509", "one of psk, cert"),
    ("auth", "PSK", "one of psk, cert"),
    ("pskSpokes", [3], "spoke numbers from 1 to 2"),
    ("certSpokes", [0], "spoke numbers from 1 to 2"),
    ("certSpokes", [1, 1], "distinct"),
    ("certSpokes", "1", "spoke numbers"),
    ("revokedSpokes", [3], "spoke numbers from 1 to 2"),
    ("certKey", "rsa-1024", "RSA below 2048 bits is breakable"),
    ("certKey", "ecdsa-p192", "weak"),
    ("certKey", "ecdsa-p224", "weak"),
    ("certKey", "dsa", "weak"),
    ("certKey", "junk", "unknown; allowed: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096"),
    ("certKey", "ECDSA-P256", "unknown"),
    ("certKey", "", "unknown"),
    ("caValidUntil", "2020-01-01", "in the past"),
    ("caValidUntil", "yesterday", "YYYY-MM-DD"),
    ("caValidUntil", "2036-02-30", "no valid date"),
    ("caValidUntil", "2036-13-01", "no valid date"),
    ("caValidUntil", "20361231", "YYYY-MM-DD"),
    ("caValidUntil", "2036-12-31T00:00", "YYYY-MM-DD"),
    ("caValidUntil", "", "YYYY-MM-DD"),
    ("idDomain", "Bad_Domain", "no valid subject alternative name"),
    ("idDomain", "bad_domain", "labels of 1-63 characters"),
    ("idDomain", "-x.lab", "neither starting nor ending with -"),
    ("idDomain", "x-.lab", "neither starting nor ending with -"),
    ("idDomain", "a..b", "labels of 1-63"),
    ("idDomain", ".lab", "labels of 1-63"),
    ("idDomain", "x" * 64, "labels of 1-63"),
    ("idDomain", "lab.example.", "ends in a dot"),
    ("idDomain", "Lab.Example", "capitals"),
    ("idDomain", "lab example", "labels"),
    ("idDomain", "lab.exämple", "labels"),
    ("idDomain", "x" * 254, "longer than 253"),
])
def test_bad_value_names_key_value_and_rule(key: str, value: object, allowed: str) -> None:
    refused(key, allowed, **{key: value})


@pytest.mark.parametrize("value", ["Bad_Domain", "-x.lab", "a..b", "x" * 64, "lab.", "LAB"])
def test_a_bad_id_domain_says_the_id_is_no_valid_subject_alternative_name(value: str) -> None:
    error = refused("idDomain", "idDomain", idDomain=value)
    assert f"the resulting IKE ID @spoke2.{value} is no valid subject alternative name" in str(error)


def test_ca_valid_until_today_is_refused() -> None:
    refused("caValidUntil", "is today", caValidUntil=datetime.date.today().isoformat())


def test_ca_valid_until_yesterday_is_in_the_past() -> None:
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    refused("caValidUntil", "in the past", caValidUntil=yesterday.isoformat())


def test_a_spoke_listed_for_both_authentications_is_refused_naming_both_keys() -> None:
    error = refused("pskSpokes", "pskSpokes.*lists spoke.*\\[2\\].*certSpokes lists too: a spoke has one "
                                 "authentication", pskSpokes=[1, 2], certSpokes=[2])
    assert "certSpokes" in str(error)


def test_both_interface_mode_lists_still_name_both_keys() -> None:
    refused("vtiSpokes", "vtiSpokes.*xfrmSpokes lists too: a spoke has one interface mode",
            vtiSpokes=[1], xfrmSpokes=[1])


@pytest.mark.parametrize("overrides", [
    {"revokedSpokes": [1]},  # auth psk: every spoke is psk
    {"auth": "cert", "pskSpokes": [2], "revokedSpokes": [1, 2]},
    {"certSpokes": [1], "revokedSpokes": [2]},
])
def test_revoking_a_psk_spoke_is_refused_naming_the_spoke(overrides: dict) -> None:
    psk = [n for n in overrides["revokedSpokes"] if n in overrides.get("pskSpokes", [])
           or (overrides.get("auth", "psk") == "psk" and n not in overrides.get("certSpokes", []))]
    error = refused("revokedSpokes", "pre-shared key: only a certificate can be revoked", **overrides)
    assert f"spoke(s) {psk}" in str(error)
