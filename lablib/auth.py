"""How the sites authenticate (issue 18): the stack config keys of pre-shared keys and certificates.

lab:auth is the hub's and every spoke's not listed in pskSpokes / certSpokes;
certKey (the allowlist is ipsec.yaml's `certificates` section, through
lablib.crypto), caValidUntil, revokedSpokes and idDomain belong to
certificate authentication. idDomain also changes every IKE ID, PSK or not
(@site.<idDomain>), since an ID goes into its site's certificate as a
subjectAltName dNSName. With the defaults the lab plans exactly as it did
before certificates existed.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Mapping

from lablib import inputs, names
from lablib.crypto import CertKeyError, check_cert_key
from lablib.errors import ConfigError

AUTHS = ("psk", "cert")
# Per-spoke exceptions to auth: pskSpokes, certSpokes (spoke numbers, like vtiSpokes / xfrmSpokes).
AUTH_SPOKE_KEYS = {auth: f"{auth}Spokes" for auth in AUTHS}
AUTH_KEYS = ("auth", *AUTH_SPOKE_KEYS.values(), "certKey", "caValidUntil", "revokedSpokes", "idDomain")
MAX_DNS_NAME = 253  # RFC 1035: the longest name, in its text form without a trailing dot
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123: 1-63 characters, no edge hyphen
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class AuthSettings:
    """The validated authentication keys (lablib.config copies them into LabConfig; id_domain goes
    to the address plan, which makes the IKE IDs)."""

    auth: str
    spoke_auths: tuple[tuple[int, str], ...]  # (spoke number, auth) where it is not auth
    cert_key: str
    ca_valid_until: datetime.date
    revoked_spokes: frozenset[int]
    id_domain: str

    def auth_of(self, spoke: int) -> str:
        return dict(self.spoke_auths).get(spoke, self.auth)


def parse_auth(raw: Mapping[str, str | None], spokes: int) -> AuthSettings:
    """Validate the authentication keys of a lab of `spokes` spokes; raise ConfigError on the first bad one."""
    auth = inputs.required(raw, "auth")
    if auth not in AUTHS:
        raise ConfigError("auth", auth, f"must be one of {', '.join(AUTHS)}")
    spoke_auths = inputs.spoke_exceptions(raw, AUTH_SPOKE_KEYS, spokes, auth, "authentication")
    cert_key = inputs.required(raw, "certKey")
    try:
        check_cert_key(cert_key)
    except CertKeyError as error:
        raise ConfigError("certKey", cert_key, str(error)) from None
    settings = AuthSettings(
        auth=auth,
        spoke_auths=spoke_auths,
        cert_key=cert_key,
        ca_valid_until=valid_until(inputs.required(raw, "caValidUntil")),
        revoked_spokes=inputs.spoke_numbers(raw, "revokedSpokes", spokes),
        id_domain=id_domain(inputs.required(raw, "idDomain"), spokes),
    )
    psk = sorted(n for n in settings.revoked_spokes if settings.auth_of(n) != "cert")
    if psk:
        raise ConfigError("revokedSpokes", inputs.required(raw, "revokedSpokes"),
                          f"lists spoke(s) {psk}, which authenticate with a pre-shared key: only a certificate "
                          "can be revoked (list them in certSpokes, or set lab:auth to cert)")
    return settings


def valid_until(text: str) -> datetime.date:
    """caValidUntil: a date YYYY-MM-DD after today (the CA's and every certificate's notAfter)."""
    form = "must be a date YYYY-MM-DD after today"
    if not _DATE.fullmatch(text):
        raise ConfigError("caValidUntil", text, form)
    try:
        date = datetime.date.fromisoformat(text)
    except ValueError as error:
        raise ConfigError("caValidUntil", text, f"is no valid date ({error}): {form}") from None
    today = datetime.date.today()
    if date < today:
        raise ConfigError("caValidUntil", text, f"is in the past ({today} today): the lab CA and every "
                                                f"certificate would be expired; {form}")
    if date == today:
        raise ConfigError("caValidUntil", text, f"is today: the lab CA and every certificate would expire "
                                                f"within the day; {form}")
    return date


def id_domain(text: str, spokes: int) -> str:
    """idDomain: "" or a DNS name that makes every site's ID @site.<text> a valid subjectAltName
    dNSName (RFC 1123 labels, lowercase, no trailing dot, at most 253 characters in all)."""
    if not text:
        return ""
    longest = names.ike_id(names.spoke_name(spokes), text)  # no site name is longer than spoke<spokes>
    if text != text.lower():
        why = "has capitals: write it in lowercase"
    elif text.endswith("."):
        why = "ends in a dot: write it without"
    elif not all(_LABEL.fullmatch(label) for label in text.split(".")):
        why = ("must be dot-separated labels of 1-63 characters a-z, 0-9 and -, neither starting nor ending "
               "with -")
    elif len(longest) - 1 > MAX_DNS_NAME:
        why = f"is too long: the ID has {len(longest) - 1} characters after its @, more than {MAX_DNS_NAME}"
    else:
        return text
    raise ConfigError("idDomain", text, f"{why}; the resulting IKE ID {longest} is no valid subject "
                                        "alternative name (dNSName, RFC 1123)")
