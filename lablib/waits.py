"""How long the lab waits for VMs that boot together: scaled to how many share how many cores.

Under software emulation a boot is CPU-bound: N one-vCPU VMs booting at once on C cores each take
about T1 x N / C (C or fewer: T1; `make bench`'s floor). A fixed wait sized for the 3-VM ci lab
fails a larger one: with 16 spokes on 2 cores the hub alone needs 1000-1900 s. So each wait is
its old fixed bound or MARGIN x that figure, the larger; labs of up to `cores` VMs keep the old bound.
"""
from __future__ import annotations

import math
import os

# Seconds a VM of the lab image takes from power-on to a running ipsec service, alone, by domain type.
BOOT_SECONDS = {"qemu": 240, "kvm": 60}
# Machines of the same kind have run twice as slow as one another (issue 16): a wait that is too long
# only reports a failure late, one too short fails a healthy lab.
MARGIN = 2
HUB_READY_SECONDS = 900  # the hub push (RemoteConfig): the hub's SSH, then its payload (lab-seed or cloud-init)
TUNNELS_SECONDS = 1200  # labctl up, wait, rebuild: every spoke's tunnel and a GRE ping through it
ENGINE_STEP_SECONDS = 600  # a drill's own `pulumi refresh` or `pulumi up` of one VM (drill drift: 20-60 s)


def boot_seconds(domain_type: str) -> int:
    return BOOT_SECONDS.get(domain_type, BOOT_SECONDS["qemu"])


def shared_boot_seconds(alone: float, vms: int, cores: int) -> float:
    """Seconds each of `vms` one-vCPU VMs booting at once takes when one alone takes `alone`."""
    return alone * max(vms, cores) / cores


def scaled_wait(fixed: int, vms: int, domain_type: str, cores: int) -> int:
    """`fixed`, or MARGIN x the boot of `vms` VMs at once on `cores` cores if that is longer."""
    return max(fixed, math.ceil(MARGIN * shared_boot_seconds(boot_seconds(domain_type), vms, cores)))


def machine_cores() -> int:
    """This machine's cores, which the VMs of a one-host lab share.

    A lab on several hosts (lab:hosts) is given the same wait, every VM over these cores: exact when
    the hosts share this machine (scripts/hosts.sh), longer than needed when they are machines of
    their own with as many cores (only the hub's host's VMs slow the hub). The hub host's own cores
    would take a login at every preview; a hub host with fewer cores than this one gets less margin."""
    return os.cpu_count() or 1


# NSS's CRL cache looks this often whether the CRL it holds is still in the database
# (CRLCache_ExistenceCheck_Interval), and as often for a CRL when it holds none
# (CRLCache_Empty_TokenFetch_Interval): a replaced list takes effect in pluto within twice this
# (measured in two namespaces: 61 s on libreswan 4.10 / NSS 3.87, 129 s on 5.2 / NSS 3.110).
NSS_CRL_CHECK_SECONDS = 60
CRL_ENFORCE_SECONDS = 3 * NSS_CRL_CHECK_SECONDS  # lab-crl-enforce's run: both looks and a margin
CRL_ENFORCE_INTERVAL = 5
