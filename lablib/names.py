"""The lab's names, in one place: users, nodes, libvirt objects, interfaces, paths.

Components, outputs, tools, tests and (through the render context) the
templates take every name from here. The few names the shell scripts need
too live in lab.env at the top of the checkout, which scripts/env.sh sources
and this module parses.
"""
from __future__ import annotations

import hashlib
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
QEMU_USER = _ENV["LAB_QEMU_USER"]  # the account the VMs' QEMU runs as (scripts/env.sh lab_qemu_conf)
NETNS = os.environ.get("LAB_NETNS", _ENV["LAB_NETNS_DEFAULT"])  # where libvirtd and the lab run
CACHE_DIR = Path(os.environ.get("LAB_CACHE") or os.path.expanduser(_ENV["LAB_CACHE_DEFAULT"]))
STATE_DIR = PROJECT_DIR / _ENV["LAB_STATE_DIR"]  # per checkout, git-ignored
RUN_PROJECT_DIR = STATE_DIR / "project"  # the CLI's copy of Pulumi.yaml and stack files
SSH_KEY_FILE = STATE_DIR / "ssh" / "id_ed25519"
E2E_FIGURES = STATE_DIR / "e2e-figures.json"  # what the end-to-end tests measured (tools/test_ratio.py)
BENCH_FIGURES = STATE_DIR / "bench.json"  # what the last `make bench` measured (tools/bench.py)


DEFAULT_SUITE = _ENV["LAB_DEFAULT_SUITE"]  # Debian 12: the lab image and test tree by default


def suite_dir(kind: str, suite: str) -> Path:
    """The cache directory of a Debian suite's tree (kind "rootfs") or lab image ("image"),
    as scripts/env.sh's lab_suite_dir places them."""
    return CACHE_DIR / (kind if suite == DEFAULT_SUITE else f"{kind}-{suite}")


# The lab's own guest kernel (scripts/build-kernel.sh: ESP in TCP, no initramfs), cached like the images.
LAB_KERNEL = CACHE_DIR / "kernel" / "bzImage"

# --- sites ---------------------------------------------------------------------
HUB = "hub"


def spoke_name(number: int) -> str:
    return f"spoke{number}"


def ike_id(site: str, domain: str = "") -> str:
    """@site, or @site.domain with lab:idDomain set (the certificate's subjectAltName dNSName
    is the ID without its @)."""
    return f"@{site}.{domain}" if domain else f"@{site}"


def ssh_login(address: object) -> str:
    """user@address of a VM, for ssh."""
    return f"{SSH_USER}@{address}"


# --- libvirt objects -------------------------------------------------------------
def stack_prefix(stack: str) -> str:
    """Every libvirt object of a stack (pool, networks, volumes, domains) starts with it."""
    return f"lab-{stack}"


def domain_name(stack: str, site: str) -> str:
    return f"{stack_prefix(stack)}-{site}"


QEMU_LOG_DIR = "/var/log/libvirt/qemu"  # libvirt's log of each domain's qemu, on the host that runs it


def console_log_path(domain: str) -> str:
    return f"{QEMU_LOG_DIR}/{domain}-console.log"


def mgmt_network_name(stack: str) -> str:
    return f"{stack_prefix(stack)}-mgmt"


def wan_network_name(stack: str, site: str) -> str:
    return f"{stack_prefix(stack)}-wan-{site}"


def pool_dir(pool_path: str, stack: str) -> str:
    """The stack's storage pool directory: lab:poolPath with the pool's name appended."""
    return f"{pool_path}/{stack_prefix(stack)}"


def boot_volume_prefix(stack: str, own: str = "") -> str:
    """Boot volumes every site shares are lab-STACK-*; a role with its own files (the hub of
    a mixed lab: own="hub") gets lab-STACK-hub-boot-*."""
    return f"{stack_prefix(stack)}-{own}-boot" if own else stack_prefix(stack)


def base_volume_name(stack: str, own: str = "") -> str:
    return f"{boot_volume_prefix(stack, own)}-base.qcow2"


def kernel_volume_name(stack: str, own: str = "") -> str:
    return f"{boot_volume_prefix(stack, own)}-vmlinuz"


def initrd_volume_name(stack: str, own: str = "") -> str:
    return f"{boot_volume_prefix(stack, own)}-initrd.img"


def disk_volume_name(stack: str, site: str) -> str:
    return f"{domain_name(stack, site)}.qcow2"


def cloudinit_volume_name(stack: str, site: str) -> str:
    return f"{domain_name(stack, site)}-cloudinit.iso"


WAN_NIC, MGMT_NIC = 0, 1  # order of a domain's network interfaces


def mac_address(stack: str, site_index: int, nic: int) -> str:
    """A stable locally administered MAC per stack, site and NIC (QEMU's 52:54 prefix)."""
    stack_byte = hashlib.sha256(stack.encode()).digest()[0]
    return f"52:54:{stack_byte:02x}:{site_index >> 8:02x}:{site_index & 0xff:02x}:{nic:02x}"


# --- inside the VMs ----------------------------------------------------------------
BRIDGE = "br0"  # the OVS bridge every site shares over GRE
VTI_INTERFACE = "ipsec0"  # the original deployment's shared VTI
WAN_INTERFACE = "wan0"  # the seed's network-config renames the WAN NIC (matched by MAC) to this
MGMT_INTERFACE = "mgmt0"
IPSEC_DIR = "/etc/ipsec.d"  # Debian's ipsec.conf and ipsec.secrets include *.conf and *.secrets here
LAB_NETWORK_SERVICE = "lab-network.service"
LAB_NETWORK_SCRIPT = "/usr/local/sbin/lab-network"
LAB_NETWORK_UNIT = f"/etc/systemd/system/{LAB_NETWORK_SERVICE}"
# A tcp spoke's guard: its conn dialled again while down (cloud-init/lab-tcp-redial.sh.j2 says why).
LAB_TCP_REDIAL_SERVICE = "lab-tcp-redial.service"
LAB_TCP_REDIAL_SCRIPT = "/usr/local/sbin/lab-tcp-redial"
LAB_TCP_REDIAL_UNIT = f"/etc/systemd/system/{LAB_TCP_REDIAL_SERVICE}"
MULTI_USER_WANTS = "/etc/systemd/system/multi-user.target.wants"  # where `systemctl enable` links the lab units
PLUTO_CTL = "/run/pluto/pluto.ctl"  # pluto's control socket: there while pluto runs (4.x and 5.x)
TCP_REDIAL_SECONDS = 5
TCP_REDIAL_CHECKS = 6  # checks without a child SA before a negotiation under way counts as stuck
TCP_REDIAL_STREAMLESS_CHECKS = 2  # checks of a negotiation with no TCP stream to the hub before it counts as dead
UNIT_START_TIMEOUT = _ENV["LAB_UNIT_START_TIMEOUT"]  # systemd's TimeoutStartSec= of the lab's units in the image
LAB_IPSEC_COMPAT = "/usr/local/sbin/lab-ipsec-compat"  # adapts the conns to the libreswan installed
LAB_UPDOWN = "/usr/local/sbin/lab-updown"  # every conn's leftupdown= (cloud-init/lab-updown.sh.j2 says why)
IPSEC_CONF = "/etc/ipsec.conf"  # Debian's: includes the conn files in IPSEC_DIR
# The hub's landing conn (lablib/tunnel.py: Landing): a template no site authenticates on, that
# every spoke's first IKE_SA_INIT lands on. Its file sorts before every hub-<spoke>.conf: pluto's
# start loads it first, as both libreswan versions need it.
LANDING_CONN = "hub-landing"
LANDING_ID = "@hub-landing"  # no site's ID: the conn itself never authenticates a peer
LANDING_CONF_PATH = f"{IPSEC_DIR}/00-{LANDING_CONN}.conf"
HUB_PUSH_LOCK = "/run/lab-hub-push.lock"  # hub pushes of a lab without certificates take it in turn
LANDING_LOADED = "/var/lib/lab/landing.loaded"  # the landing pluto has loaded (libreswan 5: reload only on change)
# With this on the kernel command line the lab image applies its seed with guest/lab-seed, not cloud-init.
CLOUD_INIT_OFF = "cloud-init=disabled"
SEED_STATUS = f"{_ENV['LAB_SEED_STATE']}/status"  # "status: done" once lab-seed applied the payload
SEED_UNIT = "lab-seed.service"
VM_PYTHON = "/usr/bin/python3"  # Debian's, on every lab image (cloud-init runs on it): Ansible's interpreter


def tunnel_interface(interface_mode: str, tunnel_mark: int) -> str:
    """ipsec0 for VTI (as in the original deployment); ipsec<ID> for an XFRM interface."""
    return VTI_INTERFACE if interface_mode == "vti" else f"ipsec{tunnel_mark}"


def conn_name(local: str, remote: str) -> str:
    """A conn is named after its two ends, local first: hub-spoke1 on the hub, spoke1-hub on spoke1."""
    return f"{local}-{remote}"


def conn_conf_path(conn: str) -> str:
    return f"{IPSEC_DIR}/{conn}.conf"


def conn_secrets_path(conn: str) -> str:
    return f"{IPSEC_DIR}/{conn}.secrets"


KERNEL_GRE_DEVICE = "t0"  # a kernel-gre spoke's GRE device on its bridge (the write-up's name)
# A route locked to the WAN MTU (as-deployed, kernel-gre) lives in a table of its own, looked up by a
# rule before the main table: pluto's updown replaces its own route to the peer in main (XFRM interface).
LOCKED_ROUTE_TABLE = 100
LOCKED_ROUTE_PRIORITY = 100
ESP_IN_TCP_PORT = 4500  # the tcp remedy: the hub's TCP port for IKE and ESP (RFC 8229's, as NAT-T's UDP)


def gre_port(remote: str) -> str:
    """The OVS port on a bridge that points at site remote (at most 15 characters)."""
    return f"gre-{remote}"


# --- the program's resources (components/) ---------------------------------------------
PROGRAM_ROOT = "lab"  # __main__'s Lab component: every resource of a stack is named under it


def node_resources(site: str) -> tuple[str, ...]:
    """The resources that are a site's VM (components/node.py): its domain, disk and cloud-init disk."""
    return tuple(f"{PROGRAM_ROOT}-{site}-{part}" for part in ("domain", "disk", "cloudinit"))


# --- the lab's commands (labctl) -----------------------------------------------------
def impair_table(stack: str, site: str) -> str:
    """The nftables table, in the lab's namespace, that drops a site's WAN fragments."""
    return f"{stack_prefix(stack)}-{site}-impair"


# --- certificates ----------------------------------------------------------------------
CA_NICKNAME = "lab-ca"  # the lab CA's nickname in every VM's NSS database
PKI_DIR = "/etc/ipsec.d/lab"  # where a VM gets its CA certificate, CRL and (for the import only) its bundle
NSS_DIR = "/var/lib/ipsec/nss"  # libreswan's NSS database on Debian
NSS_DB = f"sql:{NSS_DIR}"
PKI_CA_PATH = f"{PKI_DIR}/ca.pem"
PKI_CRL_PATH = f"{PKI_DIR}/crl.der.b64"  # the CA's revocation list (the hub's only), base64 DER
PKI_CRL_APPLIED = f"{PKI_DIR}/crl.applied"  # the list the hub imported last
PKI_REVOKED_CONNS = f"{PKI_DIR}/revoked.conns"  # the hub's conns of revoked spokes, one a line: lab-crl-enforce's
LAB_PKI_IMPORT = "/usr/local/sbin/lab-pki-import"  # a certificate spoke's first-boot import
LAB_CRL_ENFORCE = "/usr/local/sbin/lab-crl-enforce"  # the hub's: revoked spokes' SAs down until NSS has the CRL
LAB_CRL_ENFORCE_UNIT = "lab-crl-enforce"
# pk12util will not import a bundle without a password, so the bundles carry this fixed one: it
# is no secret and protects nothing. The bundle itself is handled as a secret instead: a Pulumi
# secret, written 0600 for root only (as the pre-shared keys' files are).
PKCS12_PASSWORD = "lab-import"


def cert_nickname(site: str) -> str:
    """A site's certificate (and key) nickname in its NSS database."""
    return site


def pki_bundle_path(site: str) -> str:
    """site's key, certificate and the CA as a PKCS#12 bundle, base64 (cloud-init and the SSH push carry text)."""
    return f"{PKI_DIR}/{site}.p12.b64"
