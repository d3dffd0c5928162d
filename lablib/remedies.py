"""Each spoke's tunnel shape (the field write-up's remedies, issue 20) and each spoke's own WAN.

A spoke's remedy is what keeps its ESP packets from fragmenting on its WAN:
- computed-mtu (the default, the lab as it always was): the tunnel interface
  (VTI or XFRM, lab:interfaceMode / vtiSpokes / xfrmSpokes) has the largest
  MTU whose ESP packet fits the WAN, br0 leaves room for GRE on top;
- as-deployed: the original, failing configuration, declared so that the
  failure can be kept and measured: the WAN MTU on the tunnel interface, br0
  the WAN MTU minus GRE, the route to the peer locked to the WAN MTU and GRE
  without DF, on both ends of that spoke's tunnel (what `drill fragments`
  sets for its phase 1);
- kernel-gre: the write-up's fourth remedy. The spoke's tunnel stays as
  deployed (the WAN MTU, the route locked to it), but its GRE is a kernel
  device t0 (gretap: Ethernet over GRE, as OVS's GRE port on the hub speaks;
  the write-up's L3 `gre` device carries no Ethernet and the hub's port
  cannot take it) on a br0 in OVS's userspace datapath, with the computed br0
  MTU on t0: t0's MTU alone keeps ESP from fragmenting. The hub is unchanged;
- tcp: ESP in TCP (RFC 8229): the spoke's MTUs stay as deployed, but its ESP
  travels in a TCP stream to the hub's port 4500, which the kernel segments:
  no IP fragment on the WAN, and a tunnel through a WAN that blocks UDP. Both
  ends need a kernel with CONFIG_INET_ESPINTCP, which no Debian kernel has: the
  lab builds its own (scripts/build-kernel.sh) and the config is refused
  unless the hub and the spokes boot it.
lab:spokeWans gives a spoke its own WAN MTU (ADSL over PPPoE: 1492) where
lab:wanMtu is every other site's, and the impairment its WAN starts with
(lablib/wan.py). With neither key the lab plans exactly as before.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from lablib import inputs, kconfig, names
from lablib.errors import ConfigError
from lablib.wan import DECLARED, MAX_DELAY_MS, WanImpairment, from_declared, rate_problem

COMPUTED_MTU, AS_DEPLOYED, KERNEL_GRE, TCP = "computed-mtu", "as-deployed", "kernel-gre", "tcp"
REMEDIES = (COMPUTED_MTU, AS_DEPLOYED, KERNEL_GRE, TCP)
# Per-spoke remedies other than the default, like vtiSpokes: asDeployedSpokes, kernelGreSpokes, tcpSpokes.
REMEDY_SPOKE_KEYS = {AS_DEPLOYED: "asDeployedSpokes", KERNEL_GRE: "kernelGreSpokes", TCP: "tcpSpokes"}
# The remedies whose MTUs are all as deployed (tunnel, br0, no DF on GRE, the hub's side too).
AS_DEPLOYED_MTUS = (AS_DEPLOYED, TCP)
# The remedies whose tunnel interface keeps the WAN MTU, its route to the peer locked to it.
WAN_MTU_TUNNEL = (*AS_DEPLOYED_MTUS, KERNEL_GRE)
# The kernel option ESP in TCP needs on both ends (a bool: never a module).
ESP_IN_TCP_OPTION = "CONFIG_INET_ESPINTCP"
SPOKE_WANS = "spokeWans"
REMEDY_KEYS = (*REMEDY_SPOKE_KEYS.values(), SPOKE_WANS)
# A spoke WAN's fields: (type, low, high). The MTU's bounds are lab:wanMtu's; the impairment's are
# what `labctl impair` takes (lablib/wan.py).
WAN_FIELDS: dict[str, tuple[type, float, float]] = {
    "mtu": (int, 1280, 9000), "delayMs": (int, 0, MAX_DELAY_MS), "jitterMs": (int, 0, MAX_DELAY_MS),
    "lossPct": (float, 0, 100), "rate": (str, 0, 0), "fragDropPct": (float, 0, 100), "udpBlocked": (bool, 0, 0)}
_SPOKE_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


@dataclass(frozen=True)
class RemedySettings:
    """The validated keys: (spoke, remedy) where it is not computed-mtu, (spoke, WAN MTU) where it is not wanMtu."""

    spoke_remedies: tuple[tuple[int, str], ...] = ()
    spoke_wan_mtus: tuple[tuple[int, int], ...] = ()
    spoke_wan_impairments: tuple[tuple[int, WanImpairment], ...] = ()  # where one is declared


def parse_remedies(raw: Mapping[str, str | None], spokes: int, wan_mtu: int) -> RemedySettings:
    """Validate asDeployedSpokes, kernelGreSpokes, tcpSpokes and spokeWans for a lab of `spokes` spokes; raise ConfigError on the first bad one."""
    remedies = inputs.spoke_exceptions(raw, REMEDY_SPOKE_KEYS, spokes, COMPUTED_MTU, "remedy")
    mtus, impairments = spoke_wans(inputs.required(raw, SPOKE_WANS), spokes)
    return RemedySettings(spoke_remedies=remedies,
                          spoke_wan_mtus=tuple(sorted((n, mtu) for n, mtu in mtus.items() if mtu != wan_mtu)),
                          spoke_wan_impairments=tuple(sorted((n, i) for n, i in impairments.items()
                                                             if i != WanImpairment())))


def _field_problem(field: str, value: Any) -> str | None:
    """Why a spokeWans field's value is refused (None: taken): the type and range of WAN_FIELDS."""
    kind, low, high = WAN_FIELDS[field]
    if kind is bool:
        return None if type(value) is bool else "it must be true or false"
    if kind is str:
        return rate_problem(value) if isinstance(value, str) else "it must be a string like 8mbit"
    types = (int,) if kind is int else (int, float)
    if type(value) not in types or not low <= value <= high:
        return f"it must be {'an integer' if kind is int else 'a number'} from {low} to {high}"
    return None


def spoke_wans(text: str, spokes: int) -> tuple[dict[int, int], dict[int, WanImpairment]]:
    """spokeWans: {"3": {"mtu": 1492, "fragDropPct": 30}}, spoke numbers (strings, as in spokeHosts)
    to their WAN's fields, each checked for its type and range, the impairment as netem takes it:
    (each listed spoke's MTU where it gives one, each listed spoke's impairment)."""
    form = (f'must be an object of spoke numbers 1..{spokes} to WAN settings, e.g. {{"2": {{"mtu": 1492}}}}; '
            f"fields: {', '.join(WAN_FIELDS)}")
    try:
        wans: Any = json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError(SPOKE_WANS, text, form) from None
    if not isinstance(wans, dict):
        raise ConfigError(SPOKE_WANS, text, form)
    mtus, impairments = {}, {}
    for number, wan in wans.items():
        if not _SPOKE_NUMBER.fullmatch(number) or not 1 <= int(number) <= spokes:
            raise ConfigError(SPOKE_WANS, text, f"names spoke {number!r}, which is no spoke number from 1 to {spokes}")
        if not isinstance(wan, dict) or not wan:
            raise ConfigError(SPOKE_WANS, text, f"gives spoke {number} {json.dumps(wan)}: {form}")
        for field, value in wan.items():
            if field not in WAN_FIELDS:
                raise ConfigError(SPOKE_WANS, text, f"gives spoke {number} the unknown field {field!r}; "
                                                    f"fields: {', '.join(WAN_FIELDS)}")
            if why := _field_problem(field, value):
                raise ConfigError(SPOKE_WANS, text, f"gives spoke {number} {field} {json.dumps(value)}: {why}")
        impairment = from_declared({key: value for key, value in wan.items() if key != "mtu"})
        if problem := impairment.problem():
            field = next(key for key, name in DECLARED.items() if name == problem[0])
            raise ConfigError(SPOKE_WANS, text, f"gives spoke {number} {field}: {problem[1]}")
        impairments[int(number)] = impairment
        if "mtu" in wan:
            mtus[int(number)] = wan["mtu"]
    return mtus, impairments


def check_tcp_kernels(tcp_spokes: list[int], kernels: Mapping[str, str]) -> None:
    """tcpSpokes needs ESP in TCP in the kernel of every site of its tunnels: the kernels (config key
    to path, "" for the image's own Debian kernel) of the spokes and of the hub, read from the
    kernel itself (CONFIG_IKCONFIG)."""
    if not tcp_spokes:
        return
    key = REMEDY_SPOKE_KEYS[TCP]
    for kernel_key, path in kernels.items():
        if not path:
            why = f"lab:{kernel_key} is not set, and no Debian kernel the images boot has it"
        elif "://" in path:
            why = f"lab:{kernel_key} is a URL ({path}), whose config cannot be read before it is booted"
        else:
            try:
                if kconfig.kernel_options(path).get(ESP_IN_TCP_OPTION) == "y":
                    continue
                why = f"lab:{kernel_key} ({path}) is built without it"
            except kconfig.NoConfig as error:
                why = f"lab:{kernel_key} ({path}) cannot be checked: {error}"
        raise ConfigError(key, json.dumps(tcp_spokes),
                          f"needs ESP in TCP ({ESP_IN_TCP_OPTION}=y) in the kernel of the hub and of every "
                          f"spoke, but {why}; boot the lab's own kernel, which has it: `make kernel` "
                          f"builds {names.LAB_KERNEL} (docs/remedies.md)")
