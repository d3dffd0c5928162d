"""The lab's PKI: CA, site certificates, CRLs and PKCS#12 bundles (the `cryptography` package).

Pure functions, no Pulumi: providers/pki.py keeps their results in the stack's state. Each
key type of ipsec.yaml (lablib/crypto.py's CertKey: family, bits or curve, hash) makes the
keys and picks the signatures: an RSA CA signs with RSA-PSS (MGF1 with the key type's hash,
salt as long as the digest), an ECDSA CA with ECDSA and the key type's hash.

What NSS (libnss3-tools of Debian 12, NSS 3.87, and Debian 13, NSS 3.110) makes of the
results is checked by tests/test_pki.py with the real tools; the commands that work there
are IMPORT_COMMANDS.
"""
from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lablib import names

if TYPE_CHECKING:
    PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class CertKey(Protocol):
    """The shape of lablib/crypto.py's CertKey (one key type of ipsec.yaml), all this module reads."""

    name: str  # ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096
    family: str  # "rsa" | "ecdsa"
    bits: int | None  # RSA
    curve: str | None  # ECDSA: "secp256r1" | "secp384r1"
    hash: str  # "sha256" | "sha384" | "sha512"


RSA_PUBLIC_EXPONENT = 65537
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha384": hashes.SHA384,
                                                 "sha512": hashes.SHA512}
CURVES: dict[str, type[ec.EllipticCurve]] = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1}
PBKDF2_ROUNDS = 2048  # the bundle's password is no secret (names.PKCS12_PASSWORD): more rounds protect nothing

# How a VM takes what this module makes into libreswan's NSS database (names.NSS_DB): the commands
# tests/test_pki.py runs as they are here, on Debian 12 (NSS 3.87) and Debian 13 (NSS 3.110).
# {db} is the database, {p12} the site's bundle, {ca} the CA certificate (PEM), {crl_der} the CRL
# in DER, {nickname} names.cert_nickname(site), {cert} the site's certificate (PEM).
# - pk12util imports the site's key and certificate under the bundle's friendly name and the CA
#   certificate under names.CA_NICKNAME, without trust; run again, it succeeds again.
# - certutil -A (before or after pk12util: both work) adds the CA with trust CT,, (C: a CA for
#   issuing TLS server and client certificates; what NSS's IPsec usage checks the chain against).
# - crlutil -I reads DER only, on both versions: a PEM CRL, with -a or without, is refused with
#   SEC_ERROR_CRL_INVALID. It checks the CRL's signature against the CA in the database, so it
#   comes after the CA. The same CRL again: exit 0; another CRL of the CA whose thisUpdate is not
#   later than the one held: exit 1, SEC_ERROR_OLD_CRL (every new CRL here has thisUpdate = now).
#   NSS counts an entry as revoked from its revocation date on (providers/pki.py dates them back).
# - certutil -V -u I (certificateUsageIPsec, what libreswan 4.x and 5.x verify a peer with) prints
#   "certificate is valid" (exit 0), or "certificate is invalid: Peer's Certificate has been
#   revoked." (exit 255) once the CRL lists it. Tried by hand on both, not in the tests: -u C
#   passes too; -u V (TLS server) does not for RSA (NSS wants keyEncipherment there), which no
#   IKE peer needs.
# - vfychain -p -p is pluto's own path (CERT_PKIXVerifyCert, usage 12 = IPsec); with the CRL
#   options it finds the revocation in the database ("ERROR -8180: Peer's Certificate has been
#   revoked.", exit 1), without them "Chain is good!".
IMPORT_COMMANDS = {
    "bundle": "pk12util -i {p12} -d {db} -W " + names.PKCS12_PASSWORD,
    "ca": "certutil -A -n " + names.CA_NICKNAME + " -t CT,, -a -i {ca} -d {db}",
    "crl": "crlutil -I -t 1 -i {crl_der} -d {db}",
    "verify": "certutil -V -u I -n {nickname} -d {db}",
    "verify_pkix": "vfychain -d {db} -p -p -u 12 -g leaf -h testLocalInfoFirst -m crl -a {cert}",
}

# RFC 1034's preferred name syntax as RFC 1123 relaxed it (a label may start with a digit):
# what a dNSName SAN may hold.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def hash_algorithm(key: CertKey) -> hashes.HashAlgorithm:
    return HASHES[key.hash]()


def new_private_key(key: CertKey) -> PrivateKey:
    """A fresh private key of the key type: RSA of key.bits (exponent 65537) or ECDSA on key.curve."""
    if key.family == "rsa":
        if not key.bits:
            raise ValueError(f"{key.name}: an RSA key type needs bits")
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=key.bits)
    if key.family == "ecdsa":
        if key.curve not in CURVES:
            raise ValueError(f"{key.name}: unknown curve {key.curve!r}")
        return ec.generate_private_key(CURVES[key.curve]())
    raise ValueError(f"{key.name}: unknown key family {key.family!r}")


def _sign_args(key: CertKey) -> dict[str, Any]:
    """The keyword arguments of a builder's sign() for the CA's key type: RSA-PSS (MGF1 with the
    hash, salt length = digest length) for RSA, plain ECDSA with the hash for ECDSA."""
    algorithm = hash_algorithm(key)
    if key.family == "rsa":
        pss = padding.PSS(mgf=padding.MGF1(hash_algorithm(key)), salt_length=algorithm.digest_size)
        return {"algorithm": algorithm, "rsa_padding": pss}
    return {"algorithm": algorithm}


def _aware(moment: datetime.datetime) -> datetime.datetime:
    """A naive datetime taken as UTC; an aware one as it is."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def check_dns_name(dns_name: str) -> str:
    """dns_name if it is a valid dNSName (letters, digits, hyphens, dots between labels); ValueError if not."""
    labels = dns_name.split(".")
    if not dns_name or len(dns_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{dns_name!r} is not a valid DNS name (the IKE ID without its '@' must be one)")
    return dns_name


def ca_certificate(private_key: PrivateKey, key: CertKey, common_name: str,
                   not_before: datetime.datetime, not_after: datetime.datetime) -> x509.Certificate:
    """The lab CA's self-signed certificate: CA with path length 0, for signing certificates and CRLs."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = private_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_aware(not_before)).not_valid_after(_aware(not_after))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(private_key, **_sign_args(key))


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def site_certificate(ca_private_key: PrivateKey, ca_cert: x509.Certificate, key: CertKey,
                     public_key: PublicKey, site: str, dns_name: str, serial: int,
                     not_before: datetime.datetime, not_after: datetime.datetime) -> x509.Certificate:
    """A site's end-entity certificate: CN=site, its IKE ID (without '@') as the one dNSName,
    for signing (IKE AUTH), TLS server and client usage (libreswan accepts those); key is the CA's
    key type (it picks the signature)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)]))
        .issuer_name(ca_cert.subject).public_key(public_key).serial_number(serial)
        .not_valid_before(_aware(not_before)).not_valid_after(_aware(not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(check_dns_name(dns_name))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    return builder.sign(ca_private_key, **_sign_args(key))


def revocation_list(ca_private_key: PrivateKey, ca_cert: x509.Certificate, key: CertKey,
                    revoked: Sequence[tuple[int, datetime.datetime]], number: int,
                    this_update: datetime.datetime, next_update: datetime.datetime) -> x509.CertificateRevocationList:
    """The CA's CRL number `number`, revoking each (serial, since) of revoked."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(_aware(this_update)).next_update(_aware(next_update))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    for serial, since in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_aware(since)).build())
    return builder.sign(ca_private_key, **_sign_args(key))


def pkcs12_bundle(friendly_name: str, private_key: PrivateKey, cert: x509.Certificate,
                  ca_cert: x509.Certificate, password: bytes) -> bytes:
    """The site's key and certificate under friendly_name, with the CA certificate (as
    names.CA_NICKNAME), for pk12util. PBES2 (PBKDF2-SHA256, AES-256-CBC) with an HMAC-SHA256
    MAC: both NSS 3.87 (Debian 12) and 3.110 (Debian 13) import it (tests/test_pki.py)."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PBKDF2_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    ca = pkcs12.PKCS12Certificate(ca_cert, names.CA_NICKNAME.encode())
    return pkcs12.serialize_key_and_certificates(friendly_name.encode(), private_key, cert, [ca], encryption)


def fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate's DER, as `certutil -L -n NAME` prints its "Fingerprint (SHA-256)"."""
    digest = load_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


# --- PEM ------------------------------------------------------------------------------------------
def private_key_pem(private_key: PrivateKey) -> str:
    """PKCS#8, unencrypted: the key only ever lives in Pulumi secrets."""
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


def load_private_key(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"not an RSA or ECDSA private key: {type(key).__name__}")
    return key


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def crl_der(crl_pem_text: str) -> bytes:
    """The CRL in DER, as crlutil -I reads it."""
    crl = x509.load_pem_x509_crl(crl_pem_text.encode())
    return crl.public_bytes(serialization.Encoding.DER)


def serial_hex(serial: int) -> str:
    """A serial number as the providers' outputs carry it: lowercase hex, no prefix."""
    return f"{serial:x}"
