"""The lab PKI (lablib/pki.py, providers/pki.py): what it makes, the providers' decisions, and NSS.

The first part checks certificates, CRLs and bundles with `cryptography` and calls the
providers' create/diff/update with dicts (no engine). The last part takes what the providers
make into an NSS database with Debian 12's and 13's own tools (scripts/in-root.sh, the cached
root trees), running pki.IMPORT_COMMANDS exactly as written: the VMs' import scripts use them.
Missing trees FAIL those tests: `make deps` builds them.
"""
from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from harness import ROOT
from lablib import crypto, names, pki
from providers import pki as providers

IN_ROOT = ROOT / "scripts" / "in-root.sh"
KEY_TYPES = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
SIZES = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1, "rsa-2048": 2048, "rsa-3072": 3072,
         "rsa-4096": 4096}
SUITES = ["bookworm", "trixie"]
UTC = datetime.timezone.utc


class Lab:
    """A CA and spoke1's certificate as the providers make them, for one key type."""

    def __init__(self, key_type: str) -> None:
        self.key_type = key_type
        self.ca = providers.LabCaProvider().create(
            {"keyType": key_type, "validUntil": "2036-12-31", "commonName": "lab CA"}).outs
        self.site = providers.SiteCertProvider().create(self.site_inputs()).outs

    def site_inputs(self, **overrides: Any) -> dict[str, Any]:
        return {"site": "spoke1", "ikeId": "@spoke1", "keyType": self.key_type, "caCertPem": self.ca["certPem"],
                "caKeyPem": self.ca["keyPem"], "validUntil": "2035-06-30", "revoked": False, **overrides}

    def crl_inputs(self, *issued: dict[str, Any]) -> dict[str, Any]:
        return {"caCertPem": self.ca["certPem"], "caKeyPem": self.ca["keyPem"], "keyType": self.key_type,
                "issued": list(issued)}

    def issued(self, outs: dict[str, Any] | None = None, revoked: bool = False) -> dict[str, Any]:
        outs = outs or self.site
        return {"site": outs["site"], "serial": outs["serial"], "revoked": revoked}


_LABS: dict[str, Lab] = {}


def lab_of(key_type: str) -> Lab:
    """One Lab per key type for the whole module (RSA keys take a while to make)."""
    if key_type not in _LABS:
        _LABS[key_type] = Lab(key_type)
    return _LABS[key_type]


# --- certificates ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_keys_are_of_the_key_types_size_or_curve(key_type: str) -> None:
    lab = lab_of(key_type)
    for pem in (lab.ca["keyPem"], lab.site["keyPem"]):
        key = pki.load_private_key(pem)
        if isinstance(SIZES[key_type], int):
            assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == SIZES[key_type]
            assert key.public_key().public_numbers().e == 65537
        else:
            assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, SIZES[key_type])
    assert lab.site["keyPem"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_ca_is_a_self_signed_ca_for_certificates_and_crls(key_type: str) -> None:
    lab = lab_of(key_type)
    ca = pki.load_certificate(lab.ca["certPem"])
    ca.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert lab.ca["serial"] == f"{ca.serial_number:x}"
    assert ca.not_valid_after_utc == datetime.datetime(2036, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert ca.not_valid_before_utc < datetime.datetime.now(UTC) - datetime.timedelta(hours=23)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_site_certificate_chains_to_the_ca_and_carries_its_ike_id(key_type: str) -> None:
    lab = lab_of(key_type)
    ca, cert = pki.load_certificate(lab.ca["certPem"]), pki.load_certificate(lab.site["certPem"])
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=spoke1"
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["spoke1"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert lab.site["serial"] == f"{cert.serial_number:x}"
    assert cert.not_valid_after_utc == datetime.datetime(2035, 6, 30, 23, 59, 59, tzinfo=UTC)
    assert pki.load_private_key(lab.site["keyPem"]).public_key() == cert.public_key()


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_signatures_are_rsa_pss_or_ecdsa_with_the_key_types_hash(key_type: str) -> None:
    lab = lab_of(key_type)
    key = crypto.CERT_KEYS[key_type]
    ca, cert = pki.load_certificate(lab.ca["certPem"]), pki.load_certificate(lab.site["certPem"])
    crl = x509.load_pem_x509_crl(providers.RevocationListProvider().create(lab.crl_inputs()).outs["crlPem"].encode())
    for signed in (ca, cert, crl):
        assert signed.signature_hash_algorithm is not None and signed.signature_hash_algorithm.name == key.hash
        if key.family == "rsa":
            assert signed.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
            digest = pki.HASHES[key.hash]()
            # Verifying with this exact salt length fails for any other.
            ca.public_key().verify(signed.signature, signed.tbs_certlist_bytes if signed is crl
                                   else signed.tbs_certificate_bytes,
                                   padding.PSS(padding.MGF1(pki.HASHES[key.hash]()), digest.digest_size), digest)
        else:
            assert signed.signature_algorithm_oid.dotted_string.startswith("1.2.840.10045.4.3.")  # ecdsa-with-SHA2


@pytest.mark.parametrize("name", ["", "@spoke1", "-spoke", "spoke-", "spoke_1", "a..b", "a" * 64, "spoke 1",
                                  ".".join(["a" * 63] * 4) + ".b"])
def test_site_certificate_refuses_what_is_no_dns_name(name: str) -> None:
    with pytest.raises(ValueError):
        pki.check_dns_name(name)


@pytest.mark.parametrize("name", ["spoke1", "hub", "1spoke", "spoke-1.lab.example", "a" * 63])
def test_dns_names_pass(name: str) -> None:
    assert pki.check_dns_name(name) == name


@pytest.mark.parametrize("ike_id", ["spoke1", "@spoke_1", "@", "192.168.2.10"])
def test_site_cert_needs_an_fqdn_ike_id(ike_id: str) -> None:
    lab = lab_of("ecdsa-p256")
    with pytest.raises(ValueError):
        providers.SiteCertProvider().create(lab.site_inputs(ikeId=ike_id))


@pytest.mark.parametrize("valid_until", ["2030-1-1", "31.12.2030", "2030-12-31T00:00:00", ""])
def test_valid_until_must_be_a_date(valid_until: str) -> None:
    with pytest.raises(ValueError):
        providers.end_of_day(valid_until)


def test_a_ca_key_of_another_family_is_refused() -> None:
    lab = lab_of("ecdsa-p256")
    with pytest.raises(ValueError, match="the CA's key is ecdsa"):
        providers.SiteCertProvider().create(lab.site_inputs(keyType="rsa-2048"))


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_bundle_holds_key_certificate_and_ca_under_their_nicknames(key_type: str) -> None:
    lab = lab_of(key_type)
    bundle = pkcs12.load_pkcs12(base64.b64decode(lab.site["p12"]), names.PKCS12_PASSWORD.encode())
    assert bundle.key is not None and bundle.key.public_key() == pki.load_certificate(lab.site["certPem"]).public_key()
    assert bundle.cert is not None and bundle.cert.friendly_name == names.cert_nickname("spoke1").encode()
    assert bundle.cert.certificate == pki.load_certificate(lab.site["certPem"])
    [ca] = bundle.additional_certs
    assert ca.friendly_name == names.CA_NICKNAME.encode() and ca.certificate == pki.load_certificate(lab.ca["certPem"])
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(base64.b64decode(lab.site["p12"]), b"wrong")


def test_fingerprint_is_sha256_as_certutil_prints_it() -> None:
    lab = lab_of("ecdsa-p256")
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", lab.site["fingerprint"])
    digest = pki.load_certificate(lab.site["certPem"]).fingerprint(hashes.SHA256())
    assert lab.site["fingerprint"].replace(":", "") == digest.hex().upper()


# --- the CRL -------------------------------------------------------------------------------------
def crl_serials(outs: dict[str, Any]) -> set[int]:
    return {entry.serial_number for entry in x509.load_pem_x509_crl(outs["crlPem"].encode())}


@pytest.mark.parametrize("key_type", ["ecdsa-p384", "rsa-3072"])
def test_crl_lists_exactly_the_revoked_serials(key_type: str) -> None:
    lab = lab_of(key_type)
    other = providers.SiteCertProvider().create(lab.site_inputs(site="spoke2", ikeId="@spoke2")).outs
    outs = providers.RevocationListProvider().create(
        lab.crl_inputs(lab.issued(revoked=True), lab.issued(other))).outs
    assert crl_serials(outs) == {int(lab.site["serial"], 16)}
    assert [(entry["site"], entry["serial"]) for entry in outs["revoked"]] == [("spoke1", lab.site["serial"])]
    crl = x509.load_pem_x509_crl(outs["crlPem"].encode())
    ca = pki.load_certificate(lab.ca["certPem"])
    assert crl.is_signature_valid(ca.public_key()) and crl.issuer == ca.subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1 == outs["number"]
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert crl.next_update_utc == ca.not_valid_after_utc
    assert x509.load_der_x509_crl(base64.b64decode(outs["crlDer"])) == crl


def entry(site: str, serial: str, revoked: bool = False) -> dict[str, Any]:
    return {"site": site, "serial": serial, "revoked": revoked}


NOW = datetime.datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
LATER = NOW + datetime.timedelta(hours=1)


def test_revoked_entries_collects_removed_replaced_and_marked_serials_once() -> None:
    olds = {"caCertPem": "CA", "issued": [entry("spoke1", "a1"), entry("spoke2", "b2"), entry("spoke3", "c3")],
            "revoked": [{"site": "spoke4", "serial": "d4", "since": "2026-12-01T00:00:00Z"}]}
    news = {"caCertPem": "CA", "issued": [entry("spoke1", "a1", revoked=True), entry("spoke2", "b9")]}
    assert providers.revoked_entries(olds, news, NOW) == [
        {"site": "spoke4", "serial": "d4", "since": "2026-12-01T00:00:00Z"},  # kept
        {"site": "spoke2", "serial": "b2", "since": "2026-12-03T22:00:00Z"},  # replaced
        {"site": "spoke3", "serial": "c3", "since": "2026-12-03T22:00:00Z"},  # removed
        {"site": "spoke1", "serial": "a1", "since": "2026-12-03T22:00:00Z"},  # marked revoked
    ]
    again = {**news, "revoked": providers.revoked_entries(olds, news, NOW)}
    assert providers.revoked_entries(again, {**news, "issued": []}, LATER) == again["revoked"] + [
        {"site": "spoke2", "serial": "b9", "since": "2026-12-03T23:00:00Z"}]


def test_revoked_entries_start_over_with_a_new_ca() -> None:
    olds = {"caCertPem": "old CA", "issued": [entry("spoke1", "a1")],
            "revoked": [{"site": "spoke2", "serial": "b2", "since": "2026-12-01T00:00:00Z"}]}
    news = {"caCertPem": "new CA", "issued": [entry("spoke1", "e5"), entry("spoke3", "f6", revoked=True)]}
    assert providers.revoked_entries(olds, news, NOW) == [
        {"site": "spoke3", "serial": "f6", "since": "2026-12-03T22:00:00Z"}]
    assert providers.revoked_entries(None, news, NOW) == providers.revoked_entries(olds, news, NOW)


def test_crl_number_goes_up_only_when_the_list_or_the_ca_changes() -> None:
    lab = lab_of("ecdsa-p256")
    provider = providers.RevocationListProvider()
    first = provider.create(lab.crl_inputs(lab.issued())).outs
    assert (first["number"], first["revoked"], crl_serials(first)) == (1, [], set())
    spoke2 = entry("spoke2", "abc")
    same = provider.update("crl", first, lab.crl_inputs(lab.issued(), spoke2)).outs
    assert (same["number"], same["crlPem"], same["issued"]) == (1, first["crlPem"], [lab.issued(), spoke2])
    revoked = provider.update("crl", same, lab.crl_inputs(lab.issued(revoked=True), spoke2)).outs
    assert revoked["number"] == 2 and crl_serials(revoked) == {int(lab.site["serial"], 16)}
    since = datetime.datetime.fromisoformat(revoked["revoked"][0]["since"])
    assert abs(datetime.datetime.now(UTC) - providers.NOT_BEFORE_SLACK - since) < datetime.timedelta(minutes=1)
    removed = provider.update("crl", revoked, lab.crl_inputs(lab.issued(revoked=True))).outs
    assert removed["number"] == 3 and crl_serials(removed) == {int(lab.site["serial"], 16), 0xabc}
    other = lab_of("ecdsa-p384")
    new_ca = provider.update("crl", removed, {**other.crl_inputs(other.issued())}).outs
    assert new_ca["number"] == 4 and new_ca["revoked"] == [] and crl_serials(new_ca) == set()
    assert x509.load_pem_x509_crl(new_ca["crlPem"].encode()).is_signature_valid(
        pki.load_certificate(other.ca["certPem"]).public_key())


def test_crl_diff_follows_issued_and_the_ca_only() -> None:
    lab = lab_of("ecdsa-p256")
    provider = providers.RevocationListProvider()
    olds = provider.create(lab.crl_inputs(lab.issued())).outs
    news = lab.crl_inputs(lab.issued())
    assert not provider.diff("crl", olds, news).changes
    assert not provider.diff("crl", olds, {**news, "caKeyPem": "re-encrypted"}).changes
    for changed in ({"issued": [lab.issued(revoked=True)]}, {"issued": []}, {"caCertPem": "another CA"}):
        result = provider.diff("crl", olds, {**news, **changed})
        assert result.changes and not result.replaces


# --- the providers' diffs ----------------------------------------------------------------------------
def test_ca_is_replaced_on_any_input_change() -> None:
    lab = lab_of("ecdsa-p256")
    inputs = {"keyType": "ecdsa-p256", "validUntil": "2036-12-31", "commonName": "lab CA"}
    provider = providers.LabCaProvider()
    assert not provider.diff("ca", lab.ca, inputs).changes
    for key, value in {"keyType": "rsa-2048", "validUntil": "2037-01-01", "commonName": "other CA"}.items():
        result = provider.diff("ca", lab.ca, {**inputs, key: value})
        assert result.changes and result.replaces == [key]
    assert provider.read("x", lab.ca).outs == lab.ca


@pytest.mark.parametrize("key,value", [("site", "spoke2"), ("ikeId", "@spoke9"), ("keyType", "ecdsa-p384"),
                                       ("caCertPem", "another CA"), ("validUntil", "2035-07-01")])
def test_site_cert_is_replaced_when_what_it_certifies_changes(key: str, value: str) -> None:
    lab = lab_of("ecdsa-p256")
    result = providers.SiteCertProvider().diff("c", lab.site, lab.site_inputs(**{key: value}))
    assert result.changes and result.replaces == [key]


def test_revoking_keeps_the_certificate_and_unrevoking_replaces_it() -> None:
    lab = lab_of("ecdsa-p256")
    provider = providers.SiteCertProvider()
    assert not provider.diff("c", lab.site, lab.site_inputs()).changes
    assert not provider.diff("c", lab.site, lab.site_inputs(caKeyPem="re-encrypted")).changes
    revoke = provider.diff("c", lab.site, lab.site_inputs(revoked=True))
    assert revoke.changes and not revoke.replaces
    revoked = provider.update("c", lab.site, lab.site_inputs(revoked=True)).outs
    assert revoked["revoked"] is True
    assert {key: revoked[key] for key in providers.SITE_MADE} == {key: lab.site[key] for key in providers.SITE_MADE}
    unrevoke = provider.diff("c", revoked, lab.site_inputs(revoked=False))
    assert unrevoke.changes and unrevoke.replaces == ["revoked"]
    assert provider.read("c", revoked).outs == revoked


def test_no_private_key_in_any_output_that_is_not_secret() -> None:
    lab = lab_of("rsa-2048")
    crl = providers.RevocationListProvider().create(lab.crl_inputs(lab.issued(revoked=True))).outs
    for outs, secret in ((lab.ca, providers.CA_SECRET_OUTPUTS), (lab.site, providers.SITE_SECRET_OUTPUTS),
                         (crl, providers.CRL_SECRET_OUTPUTS)):
        shown = json.dumps({key: value for key, value in outs.items() if key not in secret})
        assert "PRIVATE KEY" not in shown
        hidden = json.dumps({key: value for key, value in outs.items() if key in secret})
        assert "PRIVATE KEY" in hidden
    assert "p12" in providers.SITE_SECRET_OUTPUTS


# --- NSS, in Debian 12's and 13's trees --------------------------------------------------------------
# Runs in the suite's tree: $1 = work dir; each step's output goes to $1/NAME, its exit code to
# $1/NAME.rc; the steps are pki.IMPORT_COMMANDS, formatted.
NSS_DRIVER = """
set -u
out=$1
run() {{ name=$1; shift; rc=0; "$@" > "$out/$name" 2>&1 || rc=$?; echo $rc > "$out/$name.rc"; }}
mkdir "$out/db"
run init certutil -N -d {db} --empty-password
run bundle {bundle}
run bundle-again {bundle}
run ca {ca}
run list certutil -L -n {nickname} -d {db}
run valid {verify}
run valid-pkix {verify_pkix}
run crl-empty {crl_empty}
run valid-with-crl {verify}
run crl {crl}
run crl-again {crl}
run crl-older {crl_empty}
run crl-list crlutil -L -d {db}
run revoked {verify}
run revoked-pkix {verify_pkix}
"""


def nss_script(work: Path) -> str:
    db = f"sql:{work}/db"
    steps = {name: command.format(db=db, p12=work / "bundle.p12", ca=work / "ca.pem", cert=work / "cert.pem",
                                  crl_der=work / "crl.der", nickname=names.cert_nickname("spoke1"))
             for name, command in pki.IMPORT_COMMANDS.items()}
    crl_empty = pki.IMPORT_COMMANDS["crl"].format(db=db, crl_der=work / "crl-empty.der")
    return NSS_DRIVER.format(db=db, bundle=steps["bundle"], ca=steps["ca"], verify=steps["verify"],
                             verify_pkix=steps["verify_pkix"], crl=steps["crl"], crl_empty=crl_empty,
                             nickname=names.cert_nickname("spoke1"))


@pytest.fixture(scope="module", autouse=True)
def debian_trees() -> None:
    for suite in SUITES:
        probe = subprocess.run([str(IN_ROOT), "--suite", suite, "true"], capture_output=True, text=True)
        assert probe.returncode == 0, f"Debian {suite} tools unavailable ({probe.stderr.strip()}): run `make deps` first"


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("suite", SUITES)
def test_nss_imports_verifies_and_revokes(suite: str, key_type: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lab = lab_of(key_type)
    site = providers.SiteCertProvider().create(lab.site_inputs()).outs  # its own: revoked below
    crls = providers.RevocationListProvider()
    empty = crls.create(lab.crl_inputs(lab.issued(site))).outs
    # NSS takes a CRL of the same CA only if its thisUpdate is later than the one it holds.
    monkeypatch.setattr(providers, "_now", lambda: datetime.datetime.now(UTC) + datetime.timedelta(minutes=1))
    revoking = crls.update("crl", empty, lab.crl_inputs(lab.issued(site, revoked=True))).outs
    (tmp_path / "bundle.p12").write_bytes(base64.b64decode(site["p12"]))
    (tmp_path / "ca.pem").write_text(lab.ca["certPem"])
    (tmp_path / "cert.pem").write_text(site["certPem"])
    (tmp_path / "crl-empty.der").write_bytes(base64.b64decode(empty["crlDer"]))
    (tmp_path / "crl.der").write_bytes(base64.b64decode(revoking["crlDer"]))
    result = subprocess.run([str(IN_ROOT), "--suite", suite, "sh", "-c", nss_script(tmp_path), "driver",
                             str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    def step(name: str) -> tuple[int, str]:
        return int((tmp_path / f"{name}.rc").read_text()), (tmp_path / name).read_text().strip()

    for name in ("init", "ca", "crl-empty", "crl", "crl-again", "crl-list"):
        assert step(name)[0] == 0, f"{suite} {key_type} {name}: {step(name)}"
    for name in ("bundle", "bundle-again"):
        assert step(name) == (0, "pk12util: PKCS12 IMPORT SUCCESSFUL"), f"{suite} {key_type} {name}"
    assert f"Fingerprint (SHA-256):\n        {site['fingerprint']}" in step("list")[1]
    for name in ("valid", "valid-with-crl"):
        assert step(name) == (0, "certutil: certificate is valid"), f"{suite} {key_type} {name}"
    assert step("valid-pkix") == (0, "Chain is good!"), f"{suite} {key_type}"
    assert names.CA_NICKNAME in step("crl-list")[1]
    code, text = step("crl-older")  # an older CRL of the CA than the one held: refused
    assert code == 1 and "SEC_ERROR_OLD_CRL" in text, f"{suite} {key_type}: {text}"
    assert step("revoked") == (255, "certutil: certificate is invalid: Peer's Certificate has been revoked."), \
        f"{suite} {key_type}"
    code, text = step("revoked-pkix")
    assert code != 0 and "ERROR -8180: Peer's Certificate has been revoked." in text, f"{suite} {key_type}: {text}"
