"""`drill revoke`: the day a spoke is stolen. Its certificate is revoked; the hub tears its SAs
down and refuses its re-dials while every other spoke keeps its traffic; then a new certificate
(a new key, the VM rebuilt with it) brings the spoke back.

Both steps are what a user does: `lab:revokedSpokes` in the stack config and `labctl up`. The
hub's push imports the new CRL, waits for NSS's CRL cache to take it (lablib.render:
NSS_CRL_CHECK_SECONDS), then terminates the revoked spoke's SAs; its next dial meets the list.
Bound of the refusal, from the end of that `labctl up`: lab-crl-enforce's run on the hub
(lablib.waits.CRL_ENFORCE_SECONDS: NSS's two CRL cache looks of 60 s each and a margin), during
which it tears down every SA the spoke wins back. The drill leaves revokedSpokes as found.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import click

from lablib import names, waits
from labctl import certchecks, checks
from labctl.drills import DrillReport, Echo, overlay_flows, require_healthy, settle_seconds, time_recovery
from labctl.fanout import each_spoke
from labctl.node import TRANSIENT
from labctl.stack import LabStack, load, plain_config, set_plain_value

REVOKED_KEY = "revokedSpokes"
UP_TIMEOUT = 1800  # one `labctl up`: a rebuilt spoke's boot and its tunnel, under emulation
WATCH_INTERVAL = 2
# A watched spoke's round passes when its ping is answered within WATCH_WAIT s: once, with spoke2's
# VM rebuilt under the other pytest run's load, one ping of spoke4's (ESP in TCP) went unanswered
# for 2 s while its SAs stood untouched. Traffic that stops for longer still fails the drill.
WATCH_WAIT = 5
ECHOED = ("pulumi up:", "changed:", "tunnels up", "revoked (the hub refuses them)", "labctl:")


def pick_spoke(lab: LabStack, site: str | None) -> str:
    """site, or the first certificate spoke the hub serves; one clear error for any other."""
    spoke = lab.check_site(site) if site else next((s for s in lab.serving if lab.certificate(s)), "")
    if not spoke or spoke == names.HUB or lab.certificate(spoke) is None:
        raise click.BadParameter("this drill needs a spoke with a certificate (lab:auth cert, or the spoke "
                                 "in lab:certSpokes)", param_hint="--site")
    if spoke in lab.revoked_spokes:
        raise click.BadParameter(f"{spoke}'s certificate is revoked already", param_hint="--site")
    return spoke


def revoked_config(lab: LabStack) -> list[int]:
    return sorted(plain_config(lab.name).get(REVOKED_KEY) or [])  # type: ignore[call-overload]


def set_revoked(lab: LabStack, numbers: list[int]) -> None:
    set_plain_value(lab.name, REVOKED_KEY, sorted(numbers))


def labctl_up(stack: str, echo: Echo) -> tuple[int, float]:
    """`labctl up STACK` as a user runs it: (exit status, seconds); its main lines echoed."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "labctl", "up", stack], cwd=names.PROJECT_DIR,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if any(mark in line for mark in ECHOED):
            echo(f"  up: {line.strip()}")
    return process.wait(timeout=UP_TIMEOUT), round(time.monotonic() - start, 1)


class Watch:
    """Overlay pings from the other spokes to the hub every WATCH_INTERVAL s, for as long as the drill runs."""

    def __init__(self, lab: LabStack, spokes: list[str]) -> None:
        self.lab, self.spokes = lab.fork(), spokes
        self.rounds, self.failed = 0, list[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="revoke-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            self.rounds += 1
            try:
                flowing = each_spoke(self.lab, self.spokes, lambda lab, spoke: overlay_flows(lab, spoke, WATCH_WAIT))
            except (*TRANSIENT, RuntimeError) as error:
                self.failed.append(f"round {self.rounds}: {error}")
                continue
            self.failed += [f"{spoke} at round {self.rounds}" for spoke, ok in zip(self.spokes, flowing) if not ok]

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.lab.close()


def hub_refusals(lab: LabStack, spoke: str, since: float) -> int:
    """Lines of the hub's pluto log since the epoch `since` that refuse the spoke's certificate. pluto
    checks it in IKE_AUTH on the conn IKE_SA_INIT landed on: the spoke's own, or the template of
    another spoke (docs/drills.md: which one each libreswan picks), whose instance names
    the spoke's address as the hub sees it. (Behind NAT that address is shared, but only a revoked
    certificate gets this refusal.)"""
    log = lab.node(names.HUB).run(f"journalctl -u ipsec --since @{int(since)} --no-pager -o cat", check=False)
    conn, address = f'"{names.conn_name(names.HUB, spoke)}"', f" {checks.hub_side_address(lab, spoke)} #"
    return sum((conn in line or address in line) and ("certificate invalid" in line or "revoked" in line.lower())
               for line in log.splitlines())


def verify_all(lab: LabStack, report: DrillReport, when: str, only: str | None = None) -> None:
    failed = [r.line() for r in checks.run_checks(lab, only) if not r.passed]
    report.figures[f"verify_failed_{when}"] = len(failed)
    for line in failed:
        report.fail(f"verify {when}: {line}")


def revoke_step(lab: LabStack, spoke: str, report: DrillReport, echo: Echo) -> None:
    """revokedSpokes + labctl up; then the spoke refused, and verify (the refusal included) passing."""
    since = time.time()
    status, seconds = labctl_up(lab.name, echo)
    report.figures["revoke_up_seconds"] = seconds
    report.lines.append(f"labctl up revoking {spoke}'s certificate: {seconds} s (exit {status})")
    if status != 0:
        report.fail(f"labctl up revoking {spoke} exited {status}")
        return
    revoked = load(lab.name)
    time_recovery(report, f"{spoke} refused by the hub", lambda: certchecks.refused(revoked, spoke)[0],
                  waits.CRL_ENFORCE_SECONDS, echo, settle_seconds(lab))
    refusals = hub_refusals(revoked, spoke, since)
    report.figures["hub_refusals"] = refusals
    report.lines.append(f"the hub's log refuses {spoke}'s certificate {refusals} time(s)")
    if not refusals:
        report.fail(f"the hub logged no refusal of {spoke}'s certificate: was its tunnel refused for another reason?")
    verify_all(revoked, report, "revoked")
    revoked.close()


def run(lab: LabStack, site: str | None, echo: Echo) -> DrillReport:
    spoke = pick_spoke(lab, site)
    require_healthy(lab)
    report = DrillReport("revoke")
    report.figures["site"] = spoke
    before = lab.certificate(spoke)
    found = revoked_config(lab)
    revoking = found + [int(spoke.removeprefix("spoke"))]  # names.spoke_name's number
    others = [other for other in lab.serving if other != spoke]
    with Watch(lab, others) as watch:
        echo(f"revoking {spoke}'s certificate (lab:{REVOKED_KEY} {revoking})")
        set_revoked(lab, revoking)
        try:
            revoke_step(lab, spoke, report, echo)
        finally:
            set_revoked(lab, found)  # the plan as found, whatever happened
        echo(f"a new certificate for {spoke} (lab:{REVOKED_KEY} {found}): its VM is rebuilt with it")
        status, seconds = labctl_up(lab.name, echo)
    report.figures["new_certificate_up_seconds"] = seconds
    report.lines.append(f"labctl up with a new certificate for {spoke}: {seconds} s to its tunnel (exit {status})")
    if status != 0:
        report.fail(f"labctl up with {spoke}'s new certificate exited {status}")
    time.sleep(settle_seconds(lab))  # as every drill's recovery: verify a settled tunnel, not one just up
    back = load(lab.name)
    after = back.certificate(spoke)
    if after is None or before is None or after["serial"] == before["serial"]:
        report.fail(f"{spoke} did not get a new certificate (serial {after and after['serial']})")
    elif before["serial"] not in back.revoked_serials:
        report.fail(f"{spoke}'s old serial {before['serial']} left the CRL")
    verify_all(back, report, "back", only=spoke)
    back.close()
    report.figures.update(others_watch_rounds=watch.rounds, others_lost=len(watch.failed))
    report.lines.append(f"the other spokes ({', '.join(others) or 'none'}): {watch.rounds} rounds of pings, "
                        f"{len(watch.failed)} unanswered")
    if watch.failed:
        report.fail(f"other spokes lost overlay traffic: {', '.join(watch.failed[:5])}")
    return report
