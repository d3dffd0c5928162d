"""`verify`'s checks of a certificate site: the certificate in its NSS database, and a revoked
spoke's refusal (labctl/checks.py runs them with the others)."""
from __future__ import annotations

import datetime

from lablib import names, pki
from labctl.node import established_conns, peer_addresses
from labctl.stack import LabStack

Outcome = tuple[bool, str]


def certificate(lab: LabStack, site: str) -> Outcome:
    """The site's certificate in NSS is the planned one (SHA-256 fingerprint), unexpired, and on
    the CRL exactly when the site is revoked."""
    planned = lab.certificate(site)
    assert planned is not None  # checks.site_checks runs this on certificate sites only
    pem = lab.node(site).run(f"certutil -L -d {names.NSS_DB} -n {names.cert_nickname(site)} -a")
    held = pki.load_certificate(pem)
    found = pki.fingerprint(pem)
    left = held.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    listed = planned["serial"] in lab.revoked_serials
    should = site in lab.revoked_spokes
    ok = found == planned["fingerprint"] and left.total_seconds() > 0 and listed == should
    planned_one = "planned" if found == planned["fingerprint"] else f"NOT planned: {found[:17]}"
    state = "revoked" if listed else "not revoked"
    return ok, (f"serial {planned['serial'][:8]}, {planned_one}, until {held.not_valid_after_utc:%Y-%m-%d}, {state}"
                f"{'' if listed == should else ' (plan: ' + ('revoked' if should else 'valid') + ')'}")


def refused(lab: LabStack, spoke: str) -> Outcome:
    """A revoked spoke has no tunnel: no SA on its side, none on the hub's."""
    conn = names.conn_name(spoke, names.HUB)
    spoke_sa = conn in established_conns(lab.node(spoke))
    hub_peers = peer_addresses(lab.node(names.HUB), names.conn_name(names.HUB, spoke))
    ok = not spoke_sa and not hub_peers
    return ok, (f"revoked: spoke SA {'UP' if spoke_sa else 'none'}, "
                f"hub SA {'UP with ' + ', '.join(sorted(hub_peers)) if hub_peers else 'none'}")
