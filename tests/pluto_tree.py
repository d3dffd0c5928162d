"""A long-lived pluto in a Debian root tree, driven step by step (tests/test_pluto_certs.py, test_pluto_ike.py).

PlutoTree starts scripts/in-root.sh in fresh PID (and, without a named network
namespace, network) namespaces with a small server: it runs each step script
the test drops into the work directory with sh, as root, and records its exit
code and output. So a test gives a tree what a VM gets (files installed at
their paths and modes, then scripts run with sh), in the order the VM gets
them, with pluto running in between as on the VM, and reads pluto's log at any
time. Leaving the context shuts pluto down; the PID namespace ends whatever
else is left. Certificates come from the real providers (make_pki).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness import ROOT
from lablib import names, payload
from lablib.config import LabSpec
from providers.pki import LabCaProvider, RevocationListProvider, SiteCertProvider

IN_ROOT = ROOT / "scripts" / "in-root.sh"
LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d+: (.*)$")
STEP_TIMEOUT = 120  # seconds: the hub PKI push with a revocation sleeps 65 of them

# $1 = work dir, $2 = "veth": make the WAN veth here (own network namespace), else it exists.
# Step N is $1/N.sh: run with sh, its output to $1/N.out, then its exit code to $1/N.rc.
SERVER = r"""
set -u
out=$1
ip link set lo up
if [ "$2" = veth ]; then ip link add WAN type veth peer name WAN-peer; ip link set WAN-peer up; fi
ip link set WAN up
mkdir -p /run/pluto
n=0
while [ ! -e "$out/stop" ]; do
	if [ -e "$out/$n.sh" ]; then
		rc=0; sh "$out/$n.sh" > "$out/$n.out" 2>&1 < /dev/null || rc=$?
		echo $rc > "$out/$n.rc.new"; mv "$out/$n.rc.new" "$out/$n.rc"
		n=$((n + 1))
	else
		sleep 0.05
	fi
done
ipsec whack --shutdown > /dev/null 2>&1
i=0
while ipsec whack --status > /dev/null 2>&1 && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
""".replace("WAN", names.WAN_INTERFACE)

# What the ipsec unit does before pluto (Debian's ExecStartPre), then pluto on a config without
# conns (every conn is loaded by a step: the push's scripts, or what start-up's --autoall does).
START_PLUTO = f"""set -eu
ipsec addconn --config {names.IPSEC_CONF} --checkconfig
ipsec --checknss
printf 'config setup\\n' > "$0/startup.conf"
ipsec pluto --config "$0/startup.conf" --nofork --logfile "$0/pluto.log" > /dev/null 2>&1 &
i=0
until ipsec whack --status > /dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || {{ echo "pluto did not start"; exit 1; }}
	sleep 0.1
done
"""


# No systemd runs in a tree: these stand in for the calls the hub's scripts make of it, as systemd
# would do them. `systemd-run [--options] --unit=U CMD...` starts CMD detached (its output to
# $out/unit-U.log) and returns; `systemctl stop U` ends it; `systemctl restart ipsec` starts pluto
# anew (lab-pki-import on 4.x, for a new CA); any other systemctl call fails.
SYSTEMD_RUN = """#!/bin/sh
unit=
while [ $# -gt 0 ]; do
	case $1 in --unit=*) unit=${1#--unit=}; shift ;; --*) shift ;; *) break ;; esac
done
[ -n "$unit" ] && [ ! -e /run/unit-$unit.pid ] || { echo "systemd-run: no --unit or $unit is running" >&2; exit 1; }
setsid "$@" > "OUT/unit-$unit.log" 2>&1 < /dev/null &
echo $! > /run/unit-$unit.pid
"""
SYSTEMCTL = """#!/bin/sh
if [ "$*" = "restart ipsec" ]; then  # as the unit does: pluto anew on the config, then its conns
	ipsec whack --shutdown > /dev/null 2>&1 || true
	i=0
	while ipsec whack --status > /dev/null 2>&1 && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
	ipsec pluto --config OUT/startup.conf --nofork --logfile OUT/pluto.log > /dev/null 2>&1 < /dev/null &
	i=0
	until ipsec whack --status > /dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "pluto did not start again" >&2; exit 1; }
		sleep 0.1
	done
	exec ipsec addconn --config IPSEC_CONF --autoall > /dev/null
fi
[ "$1" = stop ] && [ $# -eq 2 ] || { echo "systemctl: only 'stop UNIT' or 'restart ipsec' here" >&2; exit 1; }
[ -e /run/unit-$2.pid ] || exit 5
kill "$(cat /run/unit-$2.pid)" 2> /dev/null || true
rm -f /run/unit-$2.pid
"""


@dataclass
class Step:
    name: str
    code: int
    out: str


class PlutoTree:
    """One side: `with PlutoTree(suite, work) as tree: tree.run(...)`; netns: a named network
    namespace whose WAN interface (names.WAN_INTERFACE) exists already, else a fresh one."""

    def __init__(self, suite: str, work: Path, netns: str = "") -> None:
        self.suite, self.work, self.netns = suite, work, netns
        self.steps: list[Step] = []
        self._files = 0
        self.log_start = 0  # pluto's log up to here is its start (start_pluto)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PlutoTree:
        self.work.mkdir(parents=True, exist_ok=True)
        command = [str(IN_ROOT), "--suite", self.suite, "unshare", *([] if self.netns else ["--net"]),
                   "--pid", "--fork", "--mount-proc", "sh", "-c", SERVER, "server", str(self.work),
                   "" if self.netns else "veth"]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        with open(self.work / "server.log", "wb") as log:
            self._process = subprocess.Popen(command, cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        return self

    def __exit__(self, *_exc: Any) -> None:
        assert self._process is not None
        (self.work / "stop").touch()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)  # our own session only
            self._process.wait()

    def run(self, name: str, script: str, timeout: float = STEP_TIMEOUT) -> Step:
        """Run script with sh in the tree ($0 is the work dir); its exit code and output."""
        assert self._process is not None
        n = len(self.steps)
        (self.work / f"{n}.sh.new").write_text(script)
        (self.work / f"{n}.sh.new").rename(self.work / f"{n}.sh")
        rc, deadline = self.work / f"{n}.rc", time.monotonic() + timeout
        while not rc.exists():
            if self._process.poll() is not None:
                raise AssertionError(f"{self.suite}: the tree's server ended: {(self.work / 'server.log').read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.suite} {name}: no end after {timeout} s")
            time.sleep(0.05)
        step = Step(name, int(rc.read_text()), (self.work / f"{n}.out").read_text())
        self.steps.append(step)
        return step

    def install(self, name: str, files: Iterable[Mapping[str, str]]) -> Step:
        """Files ({path, mode, content}) at their paths, root's, as cloud-init and the SSH push write them."""
        lines = ["set -eu"]
        for file in files:
            source = self.work / f"file{self._files}"
            self._files += 1
            source.write_text(file["content"])
            lines.append(f"install -D -o root -g root -m {file['mode']} {source} {file['path']}")
        return self.run(name, "\n".join(lines) + "\n")

    def script(self, name: str, text: str) -> Step:
        """A pushed script, run as RemoteConfig runs it (`sh -s`: from a file here)."""
        path = self.work / f"{name}.script"
        path.write_text(text)
        return self.run(name, f"exec sh {path}\n")

    def shim_systemd(self) -> Step:
        """SYSTEMD_RUN and SYSTEMCTL ahead of the tree's own in PATH."""
        files = [{"path": f"/usr/local/sbin/{name}", "mode": "0755",
                  "content": text.replace("OUT", str(self.work)).replace("IPSEC_CONF", names.IPSEC_CONF)}
                 for name, text in (("systemd-run", SYSTEMD_RUN), ("systemctl", SYSTEMCTL))]
        return self.install("systemd-shims", files)

    def start_pluto(self) -> Step:
        step = self.run("start", START_PLUTO.replace('"$0', f'"{self.work}'))
        self.log_start = self.log_size()
        return step

    def log(self, since: int | None = None) -> list[str]:
        """pluto's log lines from byte `since` on (by default: after its start), timestamps cut."""
        path = self.work / "pluto.log"
        text = path.read_bytes()[self.log_start if since is None else since:].decode() if path.exists() else ""
        return [LOG_LINE.sub(r"\1", line) for line in text.splitlines()]

    def log_size(self) -> int:
        path = self.work / "pluto.log"
        return path.stat().st_size if path.exists() else 0


def boot_files(user_data: str) -> tuple[list[dict[str, str]], list[list[str]]]:
    """A user-data's write_files (as {path, mode, content}: what PlutoTree.install takes) and runcmd."""
    data = yaml.safe_load(user_data)
    return [{"path": f["path"], "mode": f["permissions"], "content": f["content"]} for f in data["write_files"]], \
        data["runcmd"]


@dataclass
class Pki:
    """The lab PKI of a spec as providers/pki.py makes it: each certificate site's credentials and
    the CRL's state (crl["crlDer"]: the hub push's file); revoke() signs the next CRL."""

    spec: LabSpec
    ca: dict[str, Any]
    credentials: dict[str, payload.SiteCredentials]
    issued: list[dict[str, Any]]
    crl: dict[str, Any]

    def renew(self, site: str) -> None:
        """A new key and certificate for site, from the same CA (as a replaced SiteCert makes)."""
        self.credentials[site] = site_credentials(self.spec, self.ca, site)[1]

    def revoke(self, *sites: str) -> None:
        issued = [{**entry, "revoked": entry["revoked"] or entry["site"] in sites} for entry in self.issued]
        news = {**{k: self.crl[k] for k in ("caCertPem", "caKeyPem", "keyType")}, "issued": issued}
        self.issued, self.crl = issued, RevocationListProvider().update("crl", self.crl, news).outs

    def hub_files(self, hub_pki: payload.HubPki) -> list[dict[str, str]]:
        return hub_pki.files(self.credentials[names.HUB], self.crl["crlDer"])


def site_credentials(spec: LabSpec, ca: dict[str, Any], site: str) -> tuple[str, payload.SiteCredentials]:
    """site's certificate's serial and its credentials, made by the SiteCert provider."""
    config = spec.config
    ike_id = next(s.ike_id for s in (spec.plan.hub, *spec.plan.spokes) if s.name == site)
    cert = SiteCertProvider().create({
        "site": site, "ikeId": ike_id, "keyType": config.cert_key, "caCertPem": ca["certPem"],
        "caKeyPem": ca["keyPem"], "validUntil": config.ca_valid_until.isoformat(), "revoked": False}).outs
    return cert["serial"], payload.SiteCredentials(bundle=cert["p12"], ca_pem=ca["certPem"])


def make_pki(spec: LabSpec) -> Pki:
    config, plan = spec.config, spec.plan
    ca = LabCaProvider().create({"keyType": config.cert_key, "validUntil": config.ca_valid_until.isoformat(),
                                 "commonName": "test CA"}).outs
    sites = [plan.hub, *(s for s in plan.spokes if config.auth_of(s.number) == "cert")]
    made = {site.name: site_credentials(spec, ca, site.name) for site in sites}
    issued = [{"site": site, "serial": serial, "revoked": False} for site, (serial, _) in made.items()]
    crl = RevocationListProvider().create({"caCertPem": ca["certPem"], "caKeyPem": ca["keyPem"],
                                           "keyType": config.cert_key, "issued": issued}).outs
    return Pki(spec, ca, {site: credentials for site, (_, credentials) in made.items()}, issued, crl)
