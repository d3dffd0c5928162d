"""The lab's PKI as resources: the CA, each site's certificate, the CA's CRL (lablib/pki.py makes them).

Keys, certificates and CRLs are made once, when a resource is created, and live in the stack's
state from then on (private keys and PKCS#12 bundles as secrets): a run that changes nothing
makes nothing new. What replaces what:
- LabCa: any change of its inputs makes a new CA (a new key; every site certificate follows,
  as its caCertPem changes).
- SiteCert: a change of its site, IKE ID, key type, CA or end date makes a new key and
  certificate; revoking it (revoked false -> true) keeps both (the CRL lists its serial); taking
  the revocation back (true -> false) makes a new key and certificate too: a revoked
  certificate is never un-revoked. The CA's key alone changing (a secret re-encrypted, say)
  changes nothing.
- RevocationList: keeps every serial it ever revoked for this CA: those the inputs mark revoked
  and those no longer issued (a removed or replaced site's certificate); a new CA starts it over.

The decisions are plain functions (site_replaces, revoked_entries, ...) tested directly.
Outputs carry the props' camelCase names (certPem, keyPem, serial, ...).
"""
from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from lablib import crypto, names, pki

# Clocks of VMs may lag this machine's: certificates are valid from a day before they are made,
# and a CRL dates its revocations a day back, as NSS counts a CRL entry as revoked only from its
# revocation date on (seen with NSS 3.87 and 3.110: an entry dated a minute ahead of the
# checking clock left the certificate valid).
NOT_BEFORE_SLACK = datetime.timedelta(days=1)
CA_INPUTS = ("keyType", "validUntil", "commonName")
CA_SECRET_OUTPUTS = ["keyPem"]
SITE_REPLACING_INPUTS = ("site", "ikeId", "keyType", "caCertPem", "validUntil")
SITE_MADE = ("keyPem", "certPem", "serial", "fingerprint", "p12")  # what create makes, update keeps
SITE_SECRET_OUTPUTS = ["keyPem", "p12", "caKeyPem"]
CRL_INPUTS = ("issued", "caCertPem")
CRL_SECRET_OUTPUTS = ["caKeyPem"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def end_of_day(valid_until: str) -> datetime.datetime:
    """YYYY-MM-DD as the last second of that day, UTC; ValueError for anything else."""
    try:
        day = datetime.date.fromisoformat(valid_until)
    except (TypeError, ValueError) as error:
        raise ValueError(f"valid until {valid_until!r}: not a YYYY-MM-DD date") from error
    if len(valid_until) != 10:
        raise ValueError(f"valid until {valid_until!r}: not a YYYY-MM-DD date")
    return datetime.datetime.combine(day, datetime.time(23, 59, 59), tzinfo=datetime.timezone.utc)


def dns_name_of(ike_id: str) -> str:
    """The dNSName a site's certificate carries for its IKE ID: @spoke1 -> spoke1."""
    if not ike_id.startswith("@"):
        raise ValueError(f"IKE ID {ike_id!r}: a certificate's ID must be an FQDN ID (@name)")
    return pki.check_dns_name(ike_id[1:])


def _signer(props: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(CA private key, CA certificate, CertKey) from props' caKeyPem, caCertPem and keyType;
    ValueError when the CA's key is not of keyType's family (it could not sign as keyType says)."""
    key = crypto.CERT_KEYS[props["keyType"]]
    ca_key = pki.load_private_key(props["caKeyPem"])
    family = "rsa" if isinstance(ca_key, rsa.RSAPrivateKey) else "ecdsa"
    if family != key.family:
        raise ValueError(f"the CA's key is {family}, key type {key.name} is {key.family}")
    return ca_key, pki.load_certificate(props["caCertPem"]), key


# --- LabCa ---------------------------------------------------------------------------------------
def changed(keys: tuple[str, ...], olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    return [key for key in keys if olds.get(key) != news.get(key)]


class LabCaProvider(ResourceProvider):
    """Makes the CA's key and self-signed certificate; any input change replaces it."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        key = crypto.CERT_KEYS[props["keyType"]]
        private_key = pki.new_private_key(key)
        cert = pki.ca_certificate(private_key, key, props["commonName"], _now() - NOT_BEFORE_SLACK,
                                  end_of_day(props["validUntil"]))
        serial = pki.serial_hex(cert.serial_number)
        outs = {**props, "certPem": pki.certificate_pem(cert), "keyPem": pki.private_key_pem(private_key),
                "serial": serial}
        return CreateResult(id_=serial, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed(CA_INPUTS, olds, news)
        return DiffResult(changes=bool(replaces), replaces=replaces)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)


class LabCa(pulumi.dynamic.Resource):
    """The lab's CA: certPem, keyPem (secret), serial (hex)."""

    certPem: pulumi.Output[str]
    keyPem: pulumi.Output[str]
    serial: pulumi.Output[str]

    def __init__(self, name: str, *, key_type: str, valid_until: str, common_name: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"keyType": key_type, "validUntil": valid_until, "commonName": common_name,
                 "certPem": None, "keyPem": None, "serial": None}
        own = pulumi.ResourceOptions(additional_secret_outputs=CA_SECRET_OUTPUTS)
        super().__init__(LabCaProvider(), name, props, pulumi.ResourceOptions.merge(opts, own))


# --- SiteCert ------------------------------------------------------------------------------------
def site_replaces(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """The inputs whose change makes a new key and certificate: SITE_REPLACING_INPUTS, and revoked
    going from true to false (a revoked certificate is never un-revoked)."""
    replaces = changed(SITE_REPLACING_INPUTS, olds, news)
    if olds.get("revoked") is True and news.get("revoked") is False:
        replaces.append("revoked")
    return replaces


def site_diff(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """Replace per site_replaces; revoked false -> true is an in-place update; caKeyPem alone: no change."""
    replaces = site_replaces(olds, news)
    changes = bool(replaces) or olds.get("revoked") != news.get("revoked")
    return DiffResult(changes=changes, replaces=replaces)


class SiteCertProvider(ResourceProvider):
    """Makes a site's key, certificate and PKCS#12 bundle; revoking keeps them."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        ca_key, ca_cert, key = _signer(props)
        private_key = pki.new_private_key(key)
        cert = pki.site_certificate(ca_key, ca_cert, key, private_key.public_key(), props["site"],
                                    dns_name_of(props["ikeId"]), x509.random_serial_number(),
                                    _now() - NOT_BEFORE_SLACK, end_of_day(props["validUntil"]))
        cert_pem = pki.certificate_pem(cert)
        bundle = pki.pkcs12_bundle(names.cert_nickname(props["site"]), private_key, cert, ca_cert,
                                   names.PKCS12_PASSWORD.encode())
        serial = pki.serial_hex(cert.serial_number)
        outs = {**props, "keyPem": pki.private_key_pem(private_key), "certPem": cert_pem, "serial": serial,
                "fingerprint": pki.fingerprint(cert_pem), "p12": base64.b64encode(bundle).decode()}
        return CreateResult(id_=serial, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return site_diff(olds, news)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only revoked false -> true (or the CA's key re-read) gets here: key, certificate and
        serial stay."""
        return UpdateResult(outs={**news, **{key: olds[key] for key in SITE_MADE}})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)


class SiteCert(pulumi.dynamic.Resource):
    """A site's certificate from the lab CA: keyPem, p12 (base64, names.PKCS12_PASSWORD) secret;
    certPem, serial (hex), fingerprint (SHA-256 as certutil prints it)."""

    keyPem: pulumi.Output[str]
    certPem: pulumi.Output[str]
    serial: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    p12: pulumi.Output[str]
    revoked: pulumi.Output[bool]

    def __init__(self, name: str, *, site: str, ike_id: str, key_type: str, ca_cert_pem: pulumi.Input[str],
                 ca_key_pem: pulumi.Input[str], valid_until: str, revoked: bool,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"site": site, "ikeId": ike_id, "keyType": key_type, "caCertPem": ca_cert_pem,
                 "caKeyPem": ca_key_pem, "validUntil": valid_until, "revoked": revoked,
                 **{key: None for key in SITE_MADE}}
        own = pulumi.ResourceOptions(additional_secret_outputs=SITE_SECRET_OUTPUTS)
        super().__init__(SiteCertProvider(), name, props, pulumi.ResourceOptions.merge(opts, own))


# --- RevocationList ------------------------------------------------------------------------------
def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def revoked_entries(olds: dict[str, Any] | None, news: dict[str, Any], since: datetime.datetime) -> list[dict[str, str]]:
    """The CRL's entries ({site, serial, since}) after news: the old ones (none for a new CA or
    a new resource), then, once each and dated since, the serials of olds' issued that news no
    longer issues and those news marks revoked."""
    same_ca = olds is not None and olds.get("caCertPem") == news.get("caCertPem")
    entries = [dict(entry) for entry in olds.get("revoked", [])] if same_ca and olds else []
    old_issued = olds.get("issued", []) if same_ca and olds else []
    issued_now = {entry["serial"] for entry in news.get("issued", [])}
    gone = [entry for entry in old_issued if entry["serial"] not in issued_now]
    marked = [entry for entry in news.get("issued", []) if entry.get("revoked")]
    listed = {entry["serial"] for entry in entries}
    for entry in gone + marked:
        if entry["serial"] not in listed:
            entries.append({"site": entry["site"], "serial": entry["serial"], "since": _timestamp(since)})
            listed.add(entry["serial"])
    return entries


def revocation_outs(olds: dict[str, Any] | None, news: dict[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """news with revoked (new entries dated a day back: NOT_BEFORE_SLACK), number, crlPem and
    crlDer (base64): olds' CRL when neither the list nor the CA changed; else a new one with
    thisUpdate now (NSS takes a CA's new CRL only if that is later than its last), numbered one
    up (a new CA goes on counting: the CA keeps its name, and whoever holds an older CRL of that
    name must take the new one as newer)."""
    entries = revoked_entries(olds, news, now - NOT_BEFORE_SLACK)
    if olds is not None and entries == olds.get("revoked") and olds.get("caCertPem") == news.get("caCertPem"):
        return {**news, **{key: olds[key] for key in ("revoked", "number", "crlPem", "crlDer")}}
    number = int(olds.get("number", 0)) + 1 if olds is not None else 1
    ca_key, ca_cert, key = _signer(news)
    crl = pki.revocation_list(
        ca_key, ca_cert, key,
        [(int(entry["serial"], 16), datetime.datetime.fromisoformat(entry["since"])) for entry in entries],
        number, now, ca_cert.not_valid_after_utc)
    crl_pem = pki.crl_pem(crl)
    return {**news, "revoked": entries, "number": number, "crlPem": crl_pem,
            "crlDer": base64.b64encode(pki.crl_der(crl_pem)).decode()}


class RevocationListProvider(ResourceProvider):
    """Keeps the CA's CRL: signed anew whenever its list (or the CA) changes."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=revocation_outs(None, props, _now()))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=bool(changed(CRL_INPUTS, olds, news)), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=revocation_outs(olds, news, _now()))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)


class RevocationList(pulumi.dynamic.Resource):
    """The lab CA's CRL: crlPem, crlDer (base64 DER: what crlutil -I reads), revoked
    ([{site, serial, since}]), number (the CRLNumber)."""

    crlPem: pulumi.Output[str]
    crlDer: pulumi.Output[str]
    revoked: pulumi.Output[list[dict[str, str]]]
    number: pulumi.Output[int]

    def __init__(self, name: str, *, ca_cert_pem: pulumi.Input[str], ca_key_pem: pulumi.Input[str], key_type: str,
                 issued: pulumi.Input[list[dict[str, Any]]], opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"caCertPem": ca_cert_pem, "caKeyPem": ca_key_pem, "keyType": key_type, "issued": issued,
                 "crlPem": None, "crlDer": None, "revoked": None, "number": None}
        own = pulumi.ResourceOptions(additional_secret_outputs=CRL_SECRET_OUTPUTS)
        super().__init__(RevocationListProvider(), name, props, pulumi.ResourceOptions.merge(opts, own))
