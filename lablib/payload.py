"""Each node's payload, assembled in one place.

A VM gets its seed ISO (user-data, network-config, meta-data), its NICs' MACs
and a console log; the running hub gets, per spoke, the conn and secrets
files and the scripts that add and remove that spoke (pushed over SSH, see
providers/remote_config.py). Pre-shared keys are Pulumi secrets: the parts
that hold one are methods taking the key, called inside an apply.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass

from lablib import names, render
from lablib.addressing import Site
from lablib.config import LabSpec
from lablib.remedies import AS_DEPLOYED_MTUS, TCP
from lablib.render import PayloadFile
from lablib.tunnel import ConnEnd, GrePort, SpokeTunnel, landing, spoke_tunnel


def updown_file() -> PayloadFile:
    """lab-updown, which every conn names (leftupdown=)."""
    return PayloadFile(names.LAB_UPDOWN, "0755", render.render_updown())


def tunnel_files(end: ConnEnd, psk: str | None) -> list[PayloadFile]:
    """A conn and, for a pre-shared key, its secrets file (0600) for the ipsec.d directory (a
    certificate's key lives in NSS: lablib.pki)."""
    conf = PayloadFile(end.conf_path, "0644", render.render_conn(end))
    if end.uses_cert:
        return [conf]
    if psk is None:
        raise ValueError(f"{end.conn_name} needs its pre-shared key")
    return [conf, PayloadFile(end.secrets_path, "0600", render.render_secrets(end, psk))]


def tunnel_paths(end: ConnEnd) -> list[str]:
    """What tunnel_files puts on a VM (and a hub side's down script removes)."""
    return [end.conf_path] if end.uses_cert else [end.conf_path, end.secrets_path]


@dataclass(frozen=True)
class SiteCredentials:
    """A certificate site's bundle (its key, certificate and the CA; base64 PKCS#12, secret) and the CA."""

    bundle: str
    ca_pem: str


def pki_files(site: str, credentials: SiteCredentials) -> list[PayloadFile]:
    """The CA certificate and site's bundle (0600) that lab-pki-import puts into NSS."""
    return [PayloadFile(names.PKI_CA_PATH, "0644", credentials.ca_pem),
            PayloadFile(names.pki_bundle_path(site), "0600", credentials.bundle)]


def lab_network_script(spec: LabSpec, site: Site, tunnel: SpokeTunnel | None) -> str:
    """The per-boot script: tunnel device + MTU, overlay route, bridge (+ the spoke's GRE port).
    Each site's device is of its own end's interface mode (the hub's: interfaceMode, for every spoke);
    the hub also sets the routes of its as-deployed spokes (lablib/remedies.py)."""
    plan = spec.plan
    if tunnel is None:
        ports: list[GrePort] = []  # hub ports arrive with each spoke's Tunnel
        overlay_route = str(plan.overlay_pool)
        vti_remote = "0.0.0.0"  # one shared VTI for every spoke, whatever its address
        mode = spec.config.interface_mode
        as_deployed = [spoke_tunnel(spec, s) for s in plan.spokes if spec.config.remedy_of(s.number) in AS_DEPLOYED_MTUS]
        esp_in_tcp = any(spec.config.remedy_of(s.number) == TCP for s in plan.spokes)
        netem = ""
    else:
        ports = [tunnel.spoke_port]
        overlay_route = str(ipaddress.IPv4Network(plan.hub.overlay_address))
        vti_remote = str(plan.hub.wan_address)
        mode = tunnel.spoke_end.interface_mode
        as_deployed = []
        esp_in_tcp = tunnel.tcp
        netem = spec.config.wan_impairment_of(site.number).netem_args
    return render.render_lab_network(site, mode, spec.config, spec.mtu_of(site), ports, overlay_route, vti_remote,
                                     route_lock=tunnel is not None and tunnel.route_lock, as_deployed=as_deployed,
                                     esp_in_tcp=esp_in_tcp, netem=netem)


@dataclass(frozen=True)
class NodePayload:
    """What one VM boots with. user_data() needs the spoke's key: call it inside an apply."""

    site: Site
    wan_mac: str
    mgmt_mac: str
    network_config: str
    meta_data: str
    console_xslt: str  # domain XML tweak: the serial console also logs to names.console_log_path
    base_files: tuple[PayloadFile, ...]  # every site's: lab-network script and unit, lab-ipsec-compat, lab-updown
    conn: ConnEnd | None  # the spoke's own conn (None on the hub: its conns arrive over SSH)
    ssh_public_key: str
    install_packages: bool

    def user_data(self, psk: str | None = None, credentials: SiteCredentials | None = None) -> str:
        """cloud-config for the VM: a spoke's conn with its pre-shared key, or with its certificate
        (credentials: imported into NSS by lab-pki-import before ipsec starts); the hub has neither
        (its conns and certificate arrive over SSH)."""
        files = list(self.base_files)
        pki_import = self.conn is not None and self.conn.uses_cert
        tcp_redial = self.conn is not None and self.conn.enable_tcp
        if self.conn is not None:
            files += tunnel_files(self.conn, psk)
        if tcp_redial:
            files += render.tcp_redial_files(self.conn.conn_name, self.conn.remote_address)
        if pki_import:
            if credentials is None:
                raise ValueError(f"{self.site.name} needs its certificate")
            files += pki_files(self.site.name, credentials)
            files.append(PayloadFile(names.LAB_PKI_IMPORT, "0755", render.render_pki_import(self.site.name)))
        return render.render_user_data(self.site, files, self.ssh_public_key, self.install_packages,
                                       pki_import=pki_import, tcp_redial=tcp_redial)


def node_payload(spec: LabSpec, stack: str, site: Site, tunnel: SpokeTunnel | None) -> NodePayload:
    """site's payload; tunnel is the spoke's (lablib.tunnel.spoke_tunnel), None for the hub."""
    if (tunnel is None) != site.is_hub:
        raise ValueError(f"{site.name}: a spoke needs its tunnel, the hub none")
    config = spec.config
    wan_mac = names.mac_address(stack, site.site_index, names.WAN_NIC)
    mgmt_mac = names.mac_address(stack, site.site_index, names.MGMT_NIC)
    domain = names.domain_name(stack, site.name)
    return NodePayload(
        site=site,
        wan_mac=wan_mac,
        mgmt_mac=mgmt_mac,
        network_config=render.render_network_config(site, spec.mtu_of(site).wan_mtu, wan_mac, mgmt_mac),
        # A stable instance-id: cloud-init must not re-run on the second `pulumi up`.
        meta_data=render.render_meta_data(domain, site),
        console_xslt=render.render_console_xslt(names.console_log_path(domain)),
        base_files=(PayloadFile(names.LAB_NETWORK_SCRIPT, "0755", lab_network_script(spec, site, tunnel)),
                    PayloadFile(names.LAB_NETWORK_UNIT, "0644", render.render_lab_network_unit()),
                    PayloadFile(names.LAB_IPSEC_COMPAT, "0755", render.render_ipsec_compat()),
                    updown_file()),
        conn=None if tunnel is None else tunnel.spoke_end,
        ssh_public_key=config.ssh_public_key,
        install_packages=config.install_packages,
    )


def payload_wait_command(seconds: float) -> str:
    """A command (run as root) that waits at most seconds for the VM's first-boot payload: lab-seed's
    status on a VM booted with names.CLOUD_INIT_OFF (guest/lab-seed), else cloud-init's final stage."""
    seed = f"until [ -s {names.SEED_STATUS} ]; do sleep 1; done; grep -q 'status: done' {names.SEED_STATUS}"
    script = (f"if grep -qw {names.CLOUD_INIT_OFF} /proc/cmdline; then {seed}; "
              "else cloud-init status --wait >/dev/null; fi")
    return f"timeout {seconds:.0f} sh -c {shlex.quote(script)}"


@dataclass(frozen=True)
class HubSide:
    """What the running hub gets for one spoke. files() holds the key: call it inside an apply."""

    end: ConnEnd
    up_script: str
    down_script: str
    check_script: str  # exits non-zero, naming what differs, when the hub lacks what up_script did

    def files(self, psk: str | None) -> list[dict[str, str]]:
        """The conn (and a pre-shared key's secrets) files, as RemoteConfig takes them, and the updown
        script the conn names: a hub booted before the script was in its payload gets it so."""
        return [vars(f) for f in (*tunnel_files(self.end, psk), updown_file())]


def hub_side(spec: LabSpec, tunnel: SpokeTunnel) -> HubSide:
    """The hub's end of tunnel, with the MTUs the hub needs (spec.mtu)."""
    end, hub, hub_landing = tunnel.hub_end, spec.plan.hub, landing(spec)
    return HubSide(
        end=end,
        up_script=render.render_hub_tunnel_up(tunnel, hub, spec.mtu, hub_landing),
        down_script=render.render_hub_tunnel_down(tunnel, hub, tunnel_paths(end)),
        check_script=render.render_hub_tunnel_check(tunnel, spec.mtu, hub_landing),
    )


@dataclass(frozen=True)
class HubPki:
    """What the running hub gets of the lab PKI: its certificate, the CA, the CRL, the revoked
    spokes' conns and the script that keeps them out while NSS takes a new CRL. files() holds the
    hub's key: call it inside an apply."""

    up_script: str
    down_script: str
    enforce_script: str
    revoked_conns: str  # PKI_REVOKED_CONNS's content: the conns lab-crl-enforce tears down

    def files(self, credentials: SiteCredentials, crl_der_b64: str) -> list[dict[str, str]]:
        return [vars(f) for f in (*pki_files(names.HUB, credentials),
                                  PayloadFile(names.PKI_CRL_PATH, "0644", crl_der_b64),
                                  PayloadFile(names.PKI_REVOKED_CONNS, "0644", self.revoked_conns),
                                  PayloadFile(names.LAB_CRL_ENFORCE, "0755", self.enforce_script))]


def hub_pki(spec: LabSpec) -> HubPki:
    """The hub's PKI push; with a new CRL, the SAs of revokedSpokes go down until the hub's NSS holds it."""
    revoked = "".join(f"{names.conn_name(names.HUB, names.spoke_name(n))}\n" for n in sorted(spec.config.revoked_spokes))
    return HubPki(up_script=render.render_hub_pki_up(), down_script=render.render_hub_pki_down(),
                  enforce_script=render.render_crl_enforce(), revoked_conns=revoked)


# What lab-ipsec-compat (cloud-init/lab-ipsec-compat.sh.j2) deletes from every conn file on libreswan 5.
_COMPAT_DROPPED = re.compile(r"^[ \t]*dpdaction=.*(?:\n|$)", re.MULTILINE)


def installed_forms(path: str, content: str) -> tuple[str, ...]:
    """The contents a pushed file may rightly have on a VM: as pushed, and for a conn file as
    lab-ipsec-compat leaves it on libreswan 5 (the hub's up script runs it on every conn file)."""
    if path.startswith(f"{names.IPSEC_DIR}/") and path.endswith(".conf"):
        return content, _COMPAT_DROPPED.sub("", content)
    return (content,)
