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
from dataclasses import dataclass

from lablib import names, render
from lablib.addressing import Site
from lablib.config import LabSpec
from lablib.mtu import MtuPlan
from lablib.render import PayloadFile
from lablib.tunnel import ConnEnd, GrePort, SpokeTunnel


def tunnel_files(end: ConnEnd, psk: str) -> list[PayloadFile]:
    """A conn and its secrets file (0600) for the ipsec.d directory."""
    return [PayloadFile(end.conf_path, "0644", render.render_conn(end)),
            PayloadFile(end.secrets_path, "0600", render.render_secrets(end, psk))]


def lab_network_script(spec: LabSpec, site: Site, tunnel: SpokeTunnel | None) -> str:
    """The per-boot script: tunnel device + MTU, overlay route, bridge (+ the spoke's GRE port).
    Each site's device is of its own end's interface mode (the hub's: interfaceMode, for every spoke)."""
    plan = spec.plan
    if tunnel is None:
        ports: list[GrePort] = []  # hub ports arrive with each spoke's Tunnel
        overlay_route = str(plan.overlay_pool)
        vti_remote = "0.0.0.0"  # one shared VTI for every spoke, whatever its address
        mode = spec.config.interface_mode
    else:
        ports = [tunnel.spoke_port]
        overlay_route = str(ipaddress.IPv4Network(plan.hub.overlay_address))
        vti_remote = str(plan.hub.wan_address)
        mode = tunnel.spoke_end.interface_mode
    return render.render_lab_network(site, mode, spec.config, spec.mtu, ports, overlay_route, vti_remote)


@dataclass(frozen=True)
class NodePayload:
    """What one VM boots with. user_data() needs the spoke's key: call it inside an apply."""

    site: Site
    wan_mac: str
    mgmt_mac: str
    network_config: str
    meta_data: str
    console_xslt: str  # domain XML tweak: the serial console also logs to names.console_log_path
    base_files: tuple[PayloadFile, ...]  # every site's: lab-network script and unit, lab-ipsec-compat
    conn: ConnEnd | None  # the spoke's own conn (None on the hub: its conns arrive over SSH)
    ssh_public_key: str
    install_packages: bool

    def user_data(self, psk: str | None) -> str:
        """cloud-config for the VM; psk is the spoke's key (None for the hub)."""
        files = list(self.base_files)
        if self.conn is not None:
            if psk is None:
                raise ValueError(f"{self.site.name} needs its pre-shared key")
            files += tunnel_files(self.conn, psk)
        return render.render_user_data(self.site, files, self.ssh_public_key, self.install_packages)


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
        network_config=render.render_network_config(site, config.wan_mtu, wan_mac, mgmt_mac),
        # A stable instance-id: cloud-init must not re-run on the second `pulumi up`.
        meta_data=render.render_meta_data(domain, site),
        console_xslt=render.render_console_xslt(names.console_log_path(domain)),
        base_files=(PayloadFile(names.LAB_NETWORK_SCRIPT, "0755", lab_network_script(spec, site, tunnel)),
                    PayloadFile(names.LAB_NETWORK_UNIT, "0644", render.render_lab_network_unit()),
                    PayloadFile(names.LAB_IPSEC_COMPAT, "0755", render.render_ipsec_compat())),
        conn=None if tunnel is None else tunnel.spoke_end,
        ssh_public_key=config.ssh_public_key,
        install_packages=config.install_packages,
    )


@dataclass(frozen=True)
class HubSide:
    """What the running hub gets for one spoke. files() holds the key: call it inside an apply."""

    end: ConnEnd
    up_script: str
    down_script: str
    check_script: str  # exits non-zero, naming what differs, when the hub lacks what up_script did

    def files(self, psk: str) -> list[dict[str, str]]:
        """The conn and secrets files, as RemoteConfig takes them."""
        return [vars(f) for f in tunnel_files(self.end, psk)]


def hub_side(tunnel: SpokeTunnel, mtu: MtuPlan) -> HubSide:
    end, port = tunnel.hub_end, tunnel.hub_port
    return HubSide(
        end=end,
        up_script=render.render_hub_tunnel_up(end, port, mtu),
        down_script=render.render_hub_tunnel_down(end, port, [end.conf_path, end.secrets_path]),
        check_script=render.render_hub_tunnel_check(end, port, mtu),
    )


# What lab-ipsec-compat (cloud-init/lab-ipsec-compat.sh.j2) deletes from every conn file on libreswan 5.
_COMPAT_DROPPED = re.compile(r"^[ \t]*dpdaction=.*(?:\n|$)", re.MULTILINE)


def installed_forms(path: str, content: str) -> tuple[str, ...]:
    """The contents a pushed file may rightly have on a VM: as pushed, and for a conn file as
    lab-ipsec-compat leaves it on libreswan 5 (the hub's up script runs it on every conn file)."""
    if path.startswith(f"{names.IPSEC_DIR}/") and path.endswith(".conf"):
        return content, _COMPAT_DROPPED.sub("", content)
    return (content,)
