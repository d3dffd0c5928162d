"""Render the templates in cloud-init/ and libvirt/: text in, text out, no decisions.

What goes into each payload is decided in lablib.payload (and lablib.tunnel);
the templates spell no name of their own: they read lablib.names as `names`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Sequence

import jinja2

from lablib import names
from lablib.waits import CRL_ENFORCE_INTERVAL, CRL_ENFORCE_SECONDS, NSS_CRL_CHECK_SECONDS
from lablib.addressing import Site
from lablib.config import LabConfig
from lablib.mtu import MtuPlan
from lablib.tunnel import ConnEnd, GrePort, Landing, SpokeTunnel

TEMPLATE_DIRS = [names.PROJECT_DIR / "cloud-init", names.PROJECT_DIR / "libvirt"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIRS),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
    auto_reload=False,  # one program run: templates never change under it
)
# Globals reach the macros templates import (ovs.j2) as well as the templates.
_ENV.globals["names"] = names


@dataclass(frozen=True)
class PayloadFile:
    """A rendered file and where it goes on a VM."""

    path: str
    mode: str
    content: str


def _render(template: str, **context: object) -> str:
    return _ENV.get_template(template).render(**context)


def render_conn(end: ConnEnd) -> str:
    return _render("ipsec-conn.conf.j2", end=end)


def render_secrets(end: ConnEnd, psk: str) -> str:
    return _render("ipsec.secrets.j2", end=end, psk=psk)


def render_lab_network(site: Site, mode: str, config: LabConfig, mtu: MtuPlan, ports: Sequence[GrePort],
                       overlay_route: str, vti_remote: str, route_lock: bool = False,
                       as_deployed: Sequence[SpokeTunnel] = (), esp_in_tcp: bool = False, netem: str = "") -> str:
    """route_lock: an as-deployed spoke's route to the hub; as_deployed: the hub's as-deployed spokes;
    esp_in_tcp: a tcp spoke, or the hub of one; netem: the shaping a spoke's WAN starts with."""
    return _render("lab-network.sh.j2", site=site, mode=mode, mark=config.tunnel_mark,
                   interface_name=names.tunnel_interface(mode, config.tunnel_mark),
                   mtu=mtu, ports=ports, overlay_route=overlay_route, vti_remote=vti_remote,
                   route_lock=route_lock, as_deployed=as_deployed, uses_tcp=esp_in_tcp, netem=netem)


@cache
def render_lab_network_unit() -> str:
    return _render("lab-network.service")


@cache
def render_updown() -> str:
    """Every conn's updown script: the one route an XFRM-interface conn needs, libreswan's for the rest."""
    return _render("lab-updown.sh.j2")


@cache
def render_ipsec_compat() -> str:
    """The script that fits the conns to the libreswan on the VM (dpdaction= only below 5)."""
    return _render("lab-ipsec-compat.sh.j2")


def render_hub_tunnel_up(tunnel: SpokeTunnel, hub: Site, mtu: MtuPlan, landing: Landing | None) -> str:
    return _render("hub-tunnel-up.sh.j2", tunnel=tunnel, end=tunnel.hub_end, port=tunnel.hub_port, hub=hub, mtu=mtu,
                   landing=landing)


def render_hub_tunnel_check(tunnel: SpokeTunnel, mtu: MtuPlan, landing: Landing | None) -> str:
    return _render("hub-tunnel-check.sh.j2", tunnel=tunnel, end=tunnel.hub_end, port=tunnel.hub_port, mtu=mtu,
                   landing=landing)


def render_hub_tunnel_down(tunnel: SpokeTunnel, hub: Site, files: Sequence[str]) -> str:
    return _render("hub-tunnel-down.sh.j2", tunnel=tunnel, end=tunnel.hub_end, port=tunnel.hub_port, hub=hub,
                   files=files)


def render_user_data(site: Site, files: Sequence[PayloadFile], ssh_public_key: str, install_packages: bool,
                     pki_import: bool = False, tcp_redial: bool = False) -> str:
    return _render("user-data.yaml.j2", site=site, files=files, ssh_public_key=ssh_public_key,
                   install_packages=install_packages, pki_import=pki_import, tcp_redial=tcp_redial)


def tcp_redial_files(conn: str, hub: str) -> list[PayloadFile]:
    """A tcp spoke's redial guard (hub: the address its conn dials): its script and unit."""
    return [PayloadFile(names.LAB_TCP_REDIAL_SCRIPT, "0755", _render("lab-tcp-redial.sh.j2", conn=conn, hub=hub)),
            PayloadFile(names.LAB_TCP_REDIAL_UNIT, "0644", _render("lab-tcp-redial.service"))]


def render_pki_import(site: str) -> str:
    return _render("pki-import.sh.j2", nickname=names.cert_nickname(site), bundle_path=names.pki_bundle_path(site))


def render_hub_pki_up() -> str:
    return _render("hub-pki-up.sh.j2", nickname=names.cert_nickname(names.HUB),
                   bundle_path=names.pki_bundle_path(names.HUB))


def render_crl_enforce() -> str:
    return _render("crl-enforce.sh.j2", cache_seconds=NSS_CRL_CHECK_SECONDS,
                   run_seconds=CRL_ENFORCE_SECONDS, interval=CRL_ENFORCE_INTERVAL)


@cache
def render_hub_pki_down() -> str:
    return _render("hub-pki-down.sh.j2", nickname=names.cert_nickname(names.HUB),
                   bundle_path=names.pki_bundle_path(names.HUB))


def render_network_config(site: Site, wan_mtu: int, wan_mac: str, mgmt_mac: str) -> str:
    return _render("network-config.yaml.j2", site=site, wan_mtu=wan_mtu, wan_mac=wan_mac, mgmt_mac=mgmt_mac)


def render_meta_data(instance_id: str, site: Site) -> str:
    return _render("meta-data.yaml.j2", instance_id=instance_id, site=site)


def render_console_xslt(log_file: str) -> str:
    return _render("domain.xsl.j2", log_file=log_file)
