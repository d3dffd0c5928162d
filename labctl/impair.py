"""`impair`: make a site's WAN misbehave the way the original ADSL line did.

Two places, both inside the lab, never on the host's own interfaces:
- delay, jitter, loss and a rate limit: a netem qdisc on the site's uplink
  (the VM's WAN NIC, egress). This host's kernel has no netem
  (CONFIG_NET_SCH_NETEM unset), the lab's guest kernels do;
- dropping a share of the IP fragments the site sends onto its WAN, and
  blocking its IKE and NAT-T UDP (ports 500 and 4500, as networks that pass
  only TCP do: the reason for ESP in TCP): an nftables chain in the lab's
  namespace at priority -500 on the site's WAN bridge, ahead of conntrack's
  defragmentation (-400), which would otherwise reassemble fragments before
  any rule sees them.
Setting an impairment replaces the site's previous one (idempotent).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import click

from lablib import names
from lablib.wan import IKE_UDP_PORTS, WanImpairment, rate_problem
from labctl import host
from labctl.stack import LabStack

FRAGMENT_MATCH = "ip frag-off & 0x3fff != 0"  # more-fragments flag or a fragment offset
UDP_BLOCKED = "udp-blocked"  # the rule's comment, read back by current()
# impair's options, by the field each sets (for the error that names the option).
OPTIONS = {"jitter_ms": "--jitter", "rate": "--rate"}


@dataclass(frozen=True)
class Impairment(WanImpairment):
    """A WanImpairment checked as the CLI's options are: a bad one is a usage error naming the option."""

    def __post_init__(self) -> None:
        if found := self.problem():
            raise click.BadParameter(found[1], param_hint=OPTIONS[found[0]])


class RateType(click.ParamType):
    """A tc rate: a number and bit, kbit, mbit or gbit (bits per second)."""

    name = "RATE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).lower()
        if why := rate_problem(text):
            self.fail(why.replace(repr(text), repr(value)), param, ctx)
        return text


def fragment_rules(bridge: str, table: str, pct: float, udp_blocked: bool = False) -> str:
    """nft script: drop pct % of the IP fragments arriving from the site's WAN bridge, and with
    udp_blocked its UDP to the IKE ports (replaces the table)."""
    script = f"table ip {table} {{}}\ndelete table ip {table}\n"  # create-then-delete: no error if absent
    rules = []
    if pct:
        rules.append(f"iifname \"{bridge}\" {FRAGMENT_MATCH} numgen random mod 10000 < {round(pct * 100)} "
                     f"counter drop comment \"frag-drop {pct:g}\"")
    if udp_blocked:
        ports = ", ".join(map(str, IKE_UDP_PORTS))
        rules.append(f"iifname \"{bridge}\" udp dport {{ {ports} }} counter drop comment \"{UDP_BLOCKED}\"")
    if rules:
        script += (f"table ip {table} {{\n"
                   f"  chain fragments {{ type filter hook prerouting priority -500; policy accept;\n"
                   + "".join(f"    {rule}\n" for rule in rules) + "  }\n}\n")
    return script


def clear_fragment_rules(stack: str, site: str, on: str = "") -> None:
    """Remove the site's fragment-drop table from the lab's namespace (nothing to do when absent)."""
    host.nft(fragment_rules("", names.impair_table(stack, site), 0), on=on)


def check_running(lab: LabStack, site: str) -> None:
    state = host.domain_state(lab.domain(site), on=lab.host_uri(site))
    if state != "running":
        raise click.ClickException(f"{site}'s VM {lab.domain(site)} is {state or 'not defined'}: "
                                   f"is stack {lab.name} up?")


def apply(lab: LabStack, site: str, impairment: WanImpairment) -> None:
    """Set exactly this impairment on site's WAN (what was there before is replaced)."""
    check_running(lab, site)
    on = lab.host_uri(site)
    bridge = host.wan_bridge(lab.name, site, on=on)
    node = lab.node(site)
    if impairment.netem_args:
        node.run(f"tc qdisc replace dev {names.WAN_INTERFACE} root netem {impairment.netem_args}")
    else:
        node.run(f"tc qdisc del dev {names.WAN_INTERFACE} root 2>/dev/null || true")
    host.nft(fragment_rules(bridge, names.impair_table(lab.name, site), impairment.frag_drop_pct,
                            impairment.udp_blocked), on=on)


def parse_netem(qdisc: str) -> dict[str, object]:
    """The netem settings `tc qdisc show` prints (as Impairment fields)."""
    fields: dict[str, object] = {}
    if "netem" not in qdisc:
        return fields
    if found := re.search(r"delay (\d+(?:\.\d+)?)ms(?:\s+(\d+(?:\.\d+)?)ms)?", qdisc):
        fields["delay_ms"] = round(float(found.group(1)))
        fields["jitter_ms"] = round(float(found.group(2) or 0))
    if found := re.search(r"loss (\d+(?:\.\d+)?)%", qdisc):
        fields["loss_pct"] = float(found.group(1))
    if found := re.search(r"rate (\S+)", qdisc):
        fields["rate"] = found.group(1).lower()
    return fields


def current(lab: LabStack, site: str) -> Impairment:
    """What is set on site's WAN now, read back from the guest's qdisc and the namespace's nftables."""
    check_running(lab, site)
    fields = parse_netem(lab.node(site).run(f"tc qdisc show dev {names.WAN_INTERFACE} root"))
    rules = host.run("nft", "list", "table", "ip", names.impair_table(lab.name, site), check=False,
                     on=lab.host_uri(site))
    if found := re.search(r'comment "frag-drop ([0-9.]+)"', rules):
        fields["frag_drop_pct"] = float(found.group(1))
    fields["udp_blocked"] = f'comment "{UDP_BLOCKED}"' in rules
    return Impairment(**fields)  # type: ignore[arg-type]
