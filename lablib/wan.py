"""A site's WAN impairment: what `labctl impair` sets on the fly and lab:spokeWans declares (the
ADSL line of the field write-up: delay, jitter, loss, a rate limit, a share of IP fragments dropped,
UDP to the IKE ports blocked). Pure: labctl/impair.py applies it, lablib/remedies.py validates the
declared ones, the spoke's lab-network sets the netem part at every boot."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

from lablib import names

RATE = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit)$")  # a tc rate (bits per second)
IKE_UDP_PORTS = (500, names.ESP_IN_TCP_PORT)  # IKE, and NAT-T's ESP in UDP (the same number as ESP in TCP's)
MAX_DELAY_MS = 10000


def rate_problem(text: str) -> str | None:
    """Why text is no tc rate like 512kbit, 8mbit or 1gbit, None when it is one."""
    if not RATE.match(text) or float(re.sub(r"[a-z]+$", "", text)) == 0:
        return f"{text!r} is not a rate like 512kbit, 8mbit or 1gbit"
    return None


@dataclass(frozen=True)
class WanImpairment:
    delay_ms: int = 0
    jitter_ms: int = 0
    loss_pct: float = 0
    rate: str = ""
    frag_drop_pct: float = 0
    udp_blocked: bool = False

    def problem(self) -> tuple[str, str] | None:
        """(field, why) of the first setting netem would refuse or misread, None when all are fine."""
        if self.jitter_ms and not self.delay_ms:
            return "jitter_ms", "jitter needs a delay (netem varies the delay by it)"
        if self.jitter_ms > self.delay_ms:
            return "jitter_ms", f"{self.jitter_ms} ms is more than the delay {self.delay_ms} ms"
        if self.rate and (why := rate_problem(self.rate)):
            return "rate", why
        return None

    @property
    def netem_args(self) -> str:
        """netem's arguments, '' when nothing is shaped."""
        parts = []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms}ms" + (f" {self.jitter_ms}ms" if self.jitter_ms else ""))
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g}%")
        if self.rate:
            parts.append(f"rate {self.rate}")
        return " ".join(parts)

    def describe(self) -> str:
        parts = [self.netem_args or "no shaping"]
        parts.append(f"{self.frag_drop_pct:g}% of fragments dropped" if self.frag_drop_pct else "fragments pass")
        if self.udp_blocked:
            parts.append(f"UDP to ports {', '.join(map(str, IKE_UDP_PORTS))} blocked")
        return ", ".join(parts)


# lab:spokeWans' names of the fields (camelCase, as the other keys), and what each takes.
DECLARED = {"delayMs": "delay_ms", "jitterMs": "jitter_ms", "lossPct": "loss_pct", "rate": "rate",
            "fragDropPct": "frag_drop_pct", "udpBlocked": "udp_blocked"}
assert set(DECLARED.values()) == {f.name for f in fields(WanImpairment)}


def declared_fields(impairment: WanImpairment) -> dict[str, object]:
    """The settings other than the default, by their lab:spokeWans names (a stack output)."""
    default = WanImpairment()
    return {key: getattr(impairment, name) for key, name in DECLARED.items()
            if getattr(impairment, name) != getattr(default, name)}


def from_declared(settings: dict[str, object]) -> WanImpairment:
    return WanImpairment(**{DECLARED[key]: value for key, value in settings.items()})  # type: ignore[arg-type]
