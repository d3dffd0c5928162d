"""CrossGuard policies that judge the planned GRE-over-IPsec lab (pulumi-policy 1.21), one module per concern.

The pack is deliberately independent of the program: it imports nothing from
lablib. It reads the same IPsec table (ipsec.yaml) with its own parser, so it
double-checks what the program computed instead of repeating it.

What the policies read: the lab's components register their decisive
parameters as props (lab:index:Lab, LabNetworks, LabNode, Tunnel), which the
engine sends to resource policies as inputs; the libvirt resources are judged
on their own inputs. How they are read (and the workarounds that needs) is
plumbing.py; importing this package starts no server (__main__.py does).
"""
from __future__ import annotations

from .capacity import capacity_budget, production_needs_kvm
from .crypto import cert_keys_allowed, crypto_allowlist
from .keys import keys_and_ids_unique, keys_never_in_plaintext, keys_secret_and_long
from .mtu import mtu_fits
from .networks import lab_subnets_distinct, mgmt_network_separate
from .wiring import domains_have_cloudinit, hub_spoke_wiring, single_hub, tunnel_ends_agree


POLICIES = [
    crypto_allowlist,
    cert_keys_allowed,
    keys_secret_and_long,
    keys_and_ids_unique,
    keys_never_in_plaintext,
    mtu_fits,
    tunnel_ends_agree,
    hub_spoke_wiring,
    lab_subnets_distinct,
    mgmt_network_separate,
    capacity_budget,
    production_needs_kvm,
    domains_have_cloudinit,
    single_hub,
]
