"""The lab's names, in one place: users, nodes, libvirt objects, interfaces, paths.

Components, outputs, tools, tests and (through the render context) the
templates take every name from here. The few names the shell scripts need
too live in lab.env at the top of the checkout, which scripts/env.sh sources
and this module parses.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
LAB_ENV_FILE = PROJECT_DIR / "lab.env"


def _lab_env() -> dict[str, str]:
    """KEY=VALUE lines of lab.env (comments and blank lines skipped)."""
    values = {}
    for line in LAB_ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


_ENV = _lab_env()

# --- people and places on the machine running Pulumi -------------------------
SSH_USER = _ENV["LAB_SSH_USER"]  # the account on every VM (sudo, lab SSH key)
NETNS = os.environ.get("LAB_NETNS", _ENV["LAB_NETNS_DEFAULT"])  # where libvirtd and the lab run
CACHE_DIR = Path(os.environ.get("LAB_CACHE") or os.path.expanduser(_ENV["LAB_CACHE_DEFAULT"]))
STATE_DIR = PROJECT_DIR / _ENV["LAB_STATE_DIR"]  # per checkout, git-ignored
RUN_PROJECT_DIR = STATE_DIR / "project"  # the CLI's copy of Pulumi.yaml and stack files
SSH_KEY_FILE = STATE_DIR / "ssh" / "id_ed25519"

# --- sites ---------------------------------------------------------------------
HUB = "hub"


def spoke_name(number: int) -> str:
    return f"spoke{number}"


def ike_id(site: str) -> str:
    return f"@{site}"


# --- libvirt objects -------------------------------------------------------------
def stack_prefix(stack: str) -> str:
    """Every libvirt object of a stack (pool, networks, volumes, domains) starts with it."""
    return f"lab-{stack}"


def domain_name(stack: str, site: str) -> str:
    return f"{stack_prefix(stack)}-{site}"


def console_log_path(domain: str) -> str:
    return f"/var/log/libvirt/qemu/{domain}-console.log"


# --- inside the VMs ----------------------------------------------------------------
BRIDGE = "br0"  # the OVS bridge every site shares over GRE
VTI_INTERFACE = "ipsec0"  # the original deployment's shared VTI
IPSEC_DIR = "/etc/ipsec.d"
LAB_NETWORK_SCRIPT = "/usr/local/sbin/lab-network"
LAB_NETWORK_UNIT = "/etc/systemd/system/lab-network.service"
LAB_IPSEC_COMPAT = "/usr/local/sbin/lab-ipsec-compat"  # adapts the conns to the libreswan installed


def tunnel_interface(interface_mode: str, tunnel_mark: int) -> str:
    """ipsec0 for VTI (as in the original deployment); ipsec<ID> for an XFRM interface."""
    return VTI_INTERFACE if interface_mode == "vti" else f"ipsec{tunnel_mark}"


def conn_name(local: str, remote: str) -> str:
    """A conn is named after its two ends, local first: hub-spoke1 on the hub, spoke1-hub on spoke1."""
    return f"{local}-{remote}"


def gre_port(remote: str) -> str:
    """The OVS port on a bridge that points at site remote (at most 15 characters)."""
    return f"gre-{remote}"
