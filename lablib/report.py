"""What the lab tells its user: per-node summary, a YAML inventory, a Mermaid diagram."""
from __future__ import annotations

import yaml

from lablib import names
from lablib.addressing import AddressPlan, Site
from lablib.config import LabConfig
from lablib.render import interface_name


def ssh_command(site: Site) -> str:
    return f"ssh {names.ssh_login(site.mgmt_address)}"


def node_summary(config: LabConfig, site: Site) -> dict[str, object]:
    return {
        "role": "hub" if site.is_hub else "spoke",
        "wanAddress": str(site.wan_address),
        "mgmtAddress": str(site.mgmt_address),
        "overlayAddress": str(site.overlay_address),
        "bridgeAddress": str(site.bridge_address),
        "behindNat": site.behind_nat,
        "ikeId": site.ike_id,
        "sshCommand": ssh_command(site),
        "tunnelInterface": interface_name(config),
        "tunnelMtu": config.mtu.tunnel_mtu,
        "innerMtu": config.mtu.inner_mtu,
    }


def nodes(config: LabConfig, plan: AddressPlan) -> dict[str, dict[str, object]]:
    return {site.name: node_summary(config, site) for site in plan.sites}


def inventory_yaml(config: LabConfig, plan: AddressPlan) -> str:
    """An Ansible-style inventory: groups hub and spokes, SSH over the management network."""
    def host(site: Site) -> dict[str, object]:
        return {"ansible_host": str(site.mgmt_address), "ansible_user": names.SSH_USER,
                "wan_address": str(site.wan_address), "overlay_address": str(site.overlay_address),
                "bridge_address": str(site.bridge_address), "ike_id": site.ike_id,
                "behind_nat": site.behind_nat}
    inventory = {"all": {
        "vars": {"tunnel_interface": interface_name(config), "tunnel_mtu": config.mtu.tunnel_mtu,
                 "inner_mtu": config.mtu.inner_mtu, "wan_mtu": config.mtu.wan_mtu,
                 "ike": config.ike, "esp": config.esp},
        "children": {
            "hub": {"hosts": {plan.hub.name: host(plan.hub)}},
            "spokes": {"hosts": {site.name: host(site) for site in plan.spokes}},
        },
    }}
    return yaml.safe_dump(inventory, sort_keys=False)


def mermaid(config: LabConfig, plan: AddressPlan) -> str:
    """Topology as Mermaid flowchart text: NAT spokes reach the hub through a NAT box."""
    hub = plan.hub
    lines = ["flowchart LR",
             f'  {hub.name}["{hub.name}<br/>WAN {hub.wan_address}<br/>overlay {hub.overlay_address}"]']
    for spoke in plan.spokes:
        lines.append(f'  {spoke.name}["{spoke.name}<br/>WAN {spoke.wan_address}'
                     f'<br/>overlay {spoke.overlay_address}"]')
        link = f"IKEv2/ESP {config.interface_mode} MTU {config.mtu.tunnel_mtu}, GRE {spoke.gre_port}"
        if spoke.behind_nat:
            lines.append(f"  nat_{spoke.name}{{{{NAT}}}}")
            lines.append(f"  {spoke.name} -- \"{link}\" --> nat_{spoke.name} --> {hub.name}")
        else:
            lines.append(f"  {spoke.name} -- \"{link}\" --> {hub.name}")
    return "\n".join(lines) + "\n"
