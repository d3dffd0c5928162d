"""LabPki: the lab CA, a certificate per certificate site (the hub's too), the CRL and its push to the hub."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from lablib import names, payload
from lablib.addressing import Site
from lablib.config import LabSpec
from providers.pki import LabCa, RevocationList, SiteCert
from providers.remote_config import RemoteConfig


@dataclass
class LabPkiArgs:
    stack: str
    spec: LabSpec
    hub_host: str  # the hub's management address
    ssh_private_key: pulumi.Output[str]  # secret
    hub: pulumi.Resource  # the hub's domain: the push waits for it
    hub_instance: pulumi.Input[str]  # its ID: a new hub VM gets the push again
    ready_timeout: int  # seconds the push waits for the hub's SSH and cloud-init (lablib.waits)
    jump_uri: str = ""  # the hub's host's qemu+ssh URI, when that host is a remote one


class LabPki(pulumi.ComponentResource):
    """Only in a lab with a certificate site (LabConfig.uses_certs). Keys and certificates are made
    by providers/pki.py once and kept in the state as secrets; the hub gets its own, the CA and the
    CRL over SSH (it is never rebooted for them), each spoke its own in its cloud-init."""

    credentials: dict[str, pulumi.Output[payload.SiteCredentials]]  # per certificate site (secret)
    certificates: pulumi.Output[dict[str, dict[str, str]]]  # site -> serial, fingerprint, notAfter
    revoked: pulumi.Output[list[dict[str, str]]]  # the CRL's entries: site, serial, since
    hub_push: RemoteConfig

    def __init__(self, name: str, args: LabPkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        config, plan = spec.config, spec.plan
        valid_until = config.ca_valid_until.isoformat()
        super().__init__("lab:index:LabPki", name, {"certKey": config.cert_key, "caValidUntil": valid_until}, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca = LabCa(f"{name}-ca", key_type=config.cert_key, valid_until=valid_until,
                   common_name=f"{names.stack_prefix(args.stack)} CA", opts=child)
        sites: list[Site] = [plan.hub, *(s for s in plan.spokes if config.auth_of(s.number) == "cert")]
        certs = {site.name: SiteCert(
            f"{name}-{site.name}-cert", site=site.name, ike_id=site.ike_id, key_type=config.cert_key,
            ca_cert_pem=ca.certPem, ca_key_pem=ca.keyPem, valid_until=valid_until,
            revoked=not site.is_hub and site.number in config.revoked_spokes, opts=child) for site in sites}
        issued = pulumi.Output.all(*(pulumi.Output.all(c.site, c.serial, c.revoked) for c in certs.values())).apply(
            lambda rows: [{"site": site, "serial": serial, "revoked": bool(revoked)} for site, serial, revoked in rows])
        crl = RevocationList(f"{name}-crl", ca_cert_pem=ca.certPem, ca_key_pem=ca.keyPem, key_type=config.cert_key,
                             issued=issued, opts=child)
        self.credentials = {site: pulumi.Output.all(cert.p12, ca.certPem).apply(
            lambda values: payload.SiteCredentials(bundle=values[0], ca_pem=values[1])) for site, cert in certs.items()}
        hub_pki = payload.hub_pki(spec)
        self.hub_push = RemoteConfig(
            f"{name}-hub-push", host=args.hub_host, user=names.SSH_USER, private_key=args.ssh_private_key,
            files=pulumi.Output.all(self.credentials[plan.hub.name], crl.crlDer).apply(
                lambda values: hub_pki.files(values[0], values[1])),
            up_script=hub_pki.up_script, down_script=hub_pki.down_script, jump_uri=args.jump_uri,
            ready_timeout=args.ready_timeout, instance=args.hub_instance,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.hub]))
        self.certificates = pulumi.Output.all(*(pulumi.Output.all(c.site, c.serial, c.fingerprint) for c in
                                                certs.values())).apply(
            lambda rows: {site: {"serial": serial, "fingerprint": fingerprint, "validUntil": valid_until}
                          for site, serial, fingerprint in rows})
        self.revoked = crl.revoked
        self.register_outputs({"certificates": self.certificates, "revoked": self.revoked})
