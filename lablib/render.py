"""Render the payloads (libreswan, OVS, cloud-init) from the templates in cloud-init/.

Both ends of a tunnel are described by a ConnEnd; the hub's and the spoke's
are built from the same plan, and the Tunnel component registers both so
that tests and policies can check that they agree.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import jinja2

from lablib import names
from lablib.addressing import AddressPlan, Site
from lablib.config import LabConfig

TEMPLATE_DIRS = [names.PROJECT_DIR / "cloud-init", names.PROJECT_DIR / "libvirt"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIRS),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
# Templates (and the macros they import) spell no name of their own: {{ names.BRIDGE }}.
_ENV.globals["names"] = names


@dataclass(frozen=True)
class ConnEnd:
    """One side's libreswan conn: what this side says about itself and its peer."""

    conn_name: str
    local_id: str
    remote_id: str
    local_address: str  # an address, or %defaultroute behind NAT
    remote_address: str  # the hub's WAN address, or %any on the hub
    local_overlay: str
    remote_overlay: str
    ike: str
    esp: str
    auto: str  # the hub waits (add), spokes dial out (start)
    dpd_action: str
    dpd_delay: int
    interface_mode: str
    tunnel_mark: int
    interface_name: str

    @property
    def conf_path(self) -> str:
        return names.conn_conf_path(self.conn_name)

    @property
    def secrets_path(self) -> str:
        return names.conn_secrets_path(self.conn_name)

    def as_props(self) -> dict[str, object]:
        """The decisive parameters, as component props for tests and policies."""
        return {
            "connName": self.conn_name, "localId": self.local_id, "remoteId": self.remote_id,
            "localAddress": self.local_address, "remoteAddress": self.remote_address,
            "localOverlay": self.local_overlay, "remoteOverlay": self.remote_overlay,
            "ike": self.ike, "esp": self.esp, "interfaceMode": self.interface_mode,
            "tunnelMark": self.tunnel_mark, "interfaceName": self.interface_name,
        }


@dataclass(frozen=True)
class GrePort:
    name: str
    local_ip: str
    remote_ip: str
    key: int | None

    def as_props(self) -> dict[str, object]:
        return {"name": self.name, "localIp": self.local_ip, "remoteIp": self.remote_ip, "key": self.key}


@dataclass(frozen=True)
class PayloadFile:
    path: str
    mode: str
    content: str


def interface_name(config: LabConfig) -> str:
    return names.tunnel_interface(config.interface_mode, config.tunnel_mark)


def _end(config: LabConfig, local: Site, remote: Site, local_address: str, remote_address: str) -> ConnEnd:
    hub_side = local.is_hub
    return ConnEnd(
        conn_name=names.conn_name(local.name, remote.name),
        local_id=local.ike_id,
        remote_id=remote.ike_id,
        local_address=local_address,
        remote_address=remote_address,
        local_overlay=str(local.overlay_address),
        remote_overlay=str(remote.overlay_address),
        ike=config.ike,
        esp=config.esp,
        auto="add" if hub_side else "start",
        dpd_action="clear" if hub_side else "restart",
        dpd_delay=config.dpd_delay,
        interface_mode=config.interface_mode,
        tunnel_mark=config.tunnel_mark,
        interface_name=interface_name(config),
    )


def hub_end(config: LabConfig, plan: AddressPlan, spoke: Site) -> ConnEnd:
    """The hub accepts the spoke from any address (dynamic, NATed) by its ID."""
    return _end(config, plan.hub, spoke, str(plan.hub.wan_address), "%any")


def spoke_end(config: LabConfig, plan: AddressPlan, spoke: Site) -> ConnEnd:
    return _end(config, spoke, plan.hub, "%defaultroute", str(plan.hub.wan_address))


def gre_port(config: LabConfig, local: Site, remote: Site, spoke: Site) -> GrePort:
    """The port on local's br0 towards remote; the spoke number keys the pair."""
    return GrePort(
        name=remote.gre_port,
        local_ip=str(local.overlay_address),
        remote_ip=str(remote.overlay_address),
        key=spoke.number if config.gre_key else None,
    )


def render_conn(end: ConnEnd) -> str:
    return _ENV.get_template("ipsec-conn.conf.j2").render(end=end)


def render_secrets(end: ConnEnd, psk: str) -> str:
    return _ENV.get_template("ipsec.secrets.j2").render(end=end, psk=psk)


def render_lab_network(config: LabConfig, plan: AddressPlan, site: Site) -> str:
    """The per-boot script: tunnel device + MTU, overlay route, br0 (+ the spoke's GRE port)."""
    if site.is_hub:
        ports: list[GrePort] = []  # hub ports arrive with each spoke's Tunnel
        overlay_route = str(plan.overlay_pool)
        vti_remote = "0.0.0.0"  # one shared VTI for every spoke, whatever its address
    else:
        ports = [gre_port(config, site, plan.hub, site)]
        overlay_route = str(ipaddress.IPv4Network(plan.hub.overlay_address))
        vti_remote = str(plan.hub.wan_address)
    return _ENV.get_template("lab-network.sh.j2").render(
        site=site, config=config, interface_name=interface_name(config), mtu=config.mtu, ports=ports, overlay_route=overlay_route, vti_remote=vti_remote)


def render_hub_tunnel_up(config: LabConfig, plan: AddressPlan, spoke: Site) -> str:
    end = hub_end(config, plan, spoke)
    return _ENV.get_template("hub-tunnel-up.sh.j2").render(
        end=end, port=gre_port(config, plan.hub, spoke, spoke))


def render_hub_tunnel_down(config: LabConfig, plan: AddressPlan, spoke: Site) -> str:
    end = hub_end(config, plan, spoke)
    return _ENV.get_template("hub-tunnel-down.sh.j2").render(
        end=end, port=gre_port(config, plan.hub, spoke, spoke), files=[end.conf_path, end.secrets_path])


def render_ipsec_compat() -> str:
    """The script that fits the conns to the libreswan on the VM (dpdaction= only below 5)."""
    return _ENV.get_template("lab-ipsec-compat.sh.j2").render()


def tunnel_files(end: ConnEnd, psk: str) -> list[PayloadFile]:
    """A conn and its secrets file (0600) for the ipsec.d directory."""
    return [PayloadFile(end.conf_path, "0644", render_conn(end)),
            PayloadFile(end.secrets_path, "0600", render_secrets(end, psk))]


def render_user_data(config: LabConfig, plan: AddressPlan, site: Site, psk: str | None) -> str:
    """cloud-config for one VM; psk is the spoke's key (None for the hub)."""
    files = [
        PayloadFile(names.LAB_NETWORK_SCRIPT, "0755", render_lab_network(config, plan, site)),
        PayloadFile(names.LAB_NETWORK_UNIT, "0644", _ENV.get_template("lab-network.service").render()),
        PayloadFile(names.LAB_IPSEC_COMPAT, "0755", render_ipsec_compat()),
    ]
    if not site.is_hub:
        if psk is None:
            raise ValueError(f"{site.name} needs its pre-shared key")
        files += tunnel_files(spoke_end(config, plan, site), psk)
    return _ENV.get_template("user-data.yaml.j2").render(
        site=site, files=files, ssh_public_key=config.ssh_public_key,
        install_packages=config.install_packages)


def render_network_config(config: LabConfig, site: Site, wan_mac: str, mgmt_mac: str) -> str:
    return _ENV.get_template("network-config.yaml.j2").render(
        site=site, mtu=config.mtu, wan_mac=wan_mac, mgmt_mac=mgmt_mac)


def render_meta_data(stack: str, site: Site) -> str:
    """A stable instance-id: cloud-init must not re-run on the second `pulumi up`."""
    return _ENV.get_template("meta-data.yaml.j2").render(
        instance_id=names.domain_name(stack, site.name), site=site)


def render_console_xslt(domain_name: str) -> str:
    """XSLT that logs the serial console to names.console_log_path (read when a test fails)."""
    return _ENV.get_template("console-log.xsl.j2").render(log_file=names.console_log_path(domain_name))
