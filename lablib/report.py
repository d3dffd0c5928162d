"""What the lab tells its user: per-node summary, a YAML inventory, a Mermaid diagram."""
from __future__ import annotations

import yaml

from lablib import names

# libyaml's emitter when pyyaml has it (its wheels do): the same text, several times faster.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
from lablib.addressing import Site
from lablib.config import LabSpec
from lablib.hosts import routes as lab_routes
from lablib.remedies import COMPUTED_MTU
from lablib.wan import declared_fields


def ssh_command(site: Site) -> str:
    return f"ssh {names.ssh_login(site.mgmt_address)}"


def host_fields(spec: LabSpec, site: Site) -> dict[str, str]:
    """{"host": NAME} when the lab spans several libvirt hosts; nothing for one host (unchanged output)."""
    host = spec.hosts.host_of(site.name)
    return {"host": host.name} if host and spec.hosts.several else {}


def tunnel_interface(spec: LabSpec, site: Site) -> str:
    """A spoke's own device; the hub's is interfaceMode's, through which it serves every spoke."""
    return spec.config.tunnel_interface if site.is_hub else spec.config.interface_of(site.number)


def node_summary(spec: LabSpec, site: Site) -> dict[str, object]:
    return {
        "role": "hub" if site.is_hub else "spoke",
        "wanAddress": str(site.wan_address),
        "mgmtAddress": str(site.mgmt_address),
        "overlayAddress": str(site.overlay_address),
        "bridgeAddress": str(site.bridge_address),
        "behindNat": site.behind_nat,
        "ikeId": site.ike_id,
        "sshCommand": ssh_command(site),
        "tunnelInterface": tunnel_interface(spec, site),
        "tunnelMtu": spec.mtu_of(site).tunnel_mtu,
        "innerMtu": spec.mtu_of(site).inner_mtu,
        **remedy_fields(spec, site),
        **host_fields(spec, site),
        **auth_fields(spec, site),
    }


def remedy_fields(spec: LabSpec, site: Site) -> dict[str, object]:
    """Only what differs from a lab without remedies (unchanged output): a spoke's remedy, WAN
    MTU and declared WAN impairment (lab:spokeWans), the hub's br0 MTU where it takes an as-deployed
    spoke's larger frames."""
    mtu, remedy = spec.mtu_of(site), "" if site.is_hub else spec.config.remedy_of(site.number)
    declared = {} if site.is_hub else declared_fields(spec.config.wan_impairment_of(site.number))
    return {**({"remedy": remedy} if remedy not in ("", COMPUTED_MTU) else {}),
            **({"wanMtu": mtu.wan_mtu} if mtu.wan_mtu != spec.config.wan_mtu else {}),
            **({"bridgeMtu": mtu.bridge_mtu} if mtu.bridge_mtu else {}),
            **({"wanImpairment": declared} if declared else {})}


def auth_fields(spec: LabSpec, site: Site) -> dict[str, object]:
    """A certificate site's auth (and, for a revoked spoke, revoked: true); nothing for a
    pre-shared key's (unchanged output). The hub has a certificate when any site does."""
    config = spec.config
    cert = config.uses_certs if site.is_hub else config.auth_of(site.number) == "cert"
    if not cert:
        return {}
    revoked = not site.is_hub and site.number in config.revoked_spokes
    return {"auth": "cert", **({"revoked": True} if revoked else {})}


def nodes(spec: LabSpec) -> dict[str, dict[str, object]]:
    return {site.name: node_summary(spec, site) for site in spec.plan.sites}


# Every `make up` boots fresh VMs (new host keys) at the same addresses, on a private network:
# accept each key and remember none, as labctl does (labctl/node.py).
ANSIBLE_SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
HUB_GROUP, SPOKE_GROUP = "hubs", "spokes"  # not "hub": Ansible warns when a group and a host share a name


def inventory_yaml(spec: LabSpec) -> str:
    """An Ansible inventory (`ansible all -m ping` takes it without a warning): groups hubs and
    spokes, SSH over the management network with the lab's key."""
    def host(site: Site) -> dict[str, object]:
        return {"ansible_host": str(site.mgmt_address), "ansible_user": names.SSH_USER,
                "wan_address": str(site.wan_address), "overlay_address": str(site.overlay_address),
                "bridge_address": str(site.bridge_address), "ike_id": site.ike_id,
                "behind_nat": site.behind_nat, **{f"libvirt_{k}": v for k, v in host_fields(spec, site).items()},
                **own_interface(site), **own_mtus(site)}

    def own_interface(site: Site) -> dict[str, str]:
        """A spoke not of the default mode overrides the group's tunnel_interface."""
        interface = tunnel_interface(spec, site)
        return {} if interface == config.tunnel_interface else {"tunnel_interface": interface}
    def own_mtus(site: Site) -> dict[str, int]:
        """A site whose MTUs are not the lab's (lab:spokeWans, asDeployedSpokes) overrides the group's."""
        mtu = spec.mtu_of(site)
        own = {"tunnel_mtu": mtu.tunnel_mtu, "inner_mtu": mtu.inner_mtu, "wan_mtu": mtu.wan_mtu}
        return {key: value for key, value in own.items() if value != {
            "tunnel_mtu": spec.mtu.tunnel_mtu, "inner_mtu": spec.mtu.inner_mtu, "wan_mtu": config.wan_mtu}[key]}
    config, plan = spec.config, spec.plan
    inventory = {"all": {
        "vars": {"ansible_ssh_private_key_file": str(names.SSH_KEY_FILE),
                 "ansible_python_interpreter": names.VM_PYTHON, "ansible_ssh_common_args": ANSIBLE_SSH_ARGS,
                 "tunnel_interface": config.tunnel_interface, "tunnel_mtu": spec.mtu.tunnel_mtu,
                 "inner_mtu": spec.mtu.inner_mtu, "wan_mtu": config.wan_mtu,
                 "ike": config.ike, "esp": config.esp},
        "children": {
            HUB_GROUP: {"hosts": {plan.hub.name: host(plan.hub)}},
            SPOKE_GROUP: {"hosts": {site.name: host(site) for site in plan.spokes}},
        },
    }}
    return yaml.dump(inventory, Dumper=_DUMPER, sort_keys=False)


def hosts(spec: LabSpec) -> list[dict[str, object]]:
    """The hosts of lab:hosts: name, URI, uplink, its sites and the routes its own network must
    provide (docs/several-hosts.md, host checklist); empty for the one default host."""
    placement = dict(spec.hosts.placement)
    routes = lab_routes(spec.plan, spec.hosts)
    return [{"name": host.name, "uri": host.uri, "uplink": str(host.uplink),
             "sites": [site for site, on in placement.items() if on == host.name],
             "routes": [{"to": to, "via": via} for to, via in routes[host.name]]} for host in spec.hosts.hosts]


def mermaid(spec: LabSpec) -> str:
    """Topology as Mermaid flowchart text: NAT spokes reach the hub through a NAT box."""
    plan, hub = spec.plan, spec.plan.hub

    def on(site: Site) -> str:
        return "".join(f"<br/>on {name}" for name in host_fields(spec, site).values())
    lines = ["flowchart LR",
             f'  {hub.name}["{hub.name}<br/>WAN {hub.wan_address}<br/>overlay {hub.overlay_address}{on(hub)}"]']
    for spoke in plan.spokes:
        lines.append(f'  {spoke.name}["{spoke.name}<br/>WAN {spoke.wan_address}'
                     f'<br/>overlay {spoke.overlay_address}{on(spoke)}"]')
        link = f"IKEv2/ESP {spec.config.mode_of(spoke.number)} MTU {spec.mtu_of(spoke).tunnel_mtu}, GRE {spoke.gre_port}"
        if spoke.behind_nat:
            lines.append(f"  nat_{spoke.name}{{{{NAT}}}}")
            lines.append(f"  {spoke.name} -- \"{link}\" --> nat_{spoke.name} --> {hub.name}")
        else:
            lines.append(f"  {spoke.name} -- \"{link}\" --> {hub.name}")
    return "\n".join(lines) + "\n"
