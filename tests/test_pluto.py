"""Every rendered conn loads into a real pluto of each libreswan version, with no warning.

For each Debian root tree (bookworm: libreswan 4.10, trixie: 5.x), each config
variant and each side, a real pluto starts inside a throw-away network
namespace (and PID namespace, so nothing outlives the test) in the tree, with
the side's WAN address on a veth and, for a spoke, a default route. The conn
and secrets files go to /etc/ipsec.d and lab-ipsec-compat and lab-updown (the
VMs' scripts) to their places, as on the VMs. Then, as each side gets its conns:
- the hub: the rendered hub push script (hub-tunnel-up, without its OVS and MTU
  lines: no Open vSwitch here, no tunnel device for VTI) for every spoke, run once more (the replace of a
  loaded conn), then hub-tunnel-down twice; the ipsec unit's
  `addconn --checkconfig` as at the hub's next boot. The landing conn, which every push loads
  (lablib/tunnel.py: Landing), must load as quietly and stay loaded;
- a spoke: first boot's compat step, the unit's `addconn --checkconfig`, the
  secrets, `ipsec addconn` of its conn (what pluto's start-up `addconn
  --autoall` does; pluto itself starts on a config without conns, so every
  conn is loaded exactly once, by us). The conn is started too (auto=start):
  its IKE packets never leave the namespace.
Every output and pluto's log may hold nothing but the expected lines, and
`ipsec whack --status` must show the liveness each version should run with
(4.x: the conn's dpdaction, 5.x: none).

XFRM interfaces: pluto refuses an `ipsec-interface=` conn unless the kernel
can create an XFRM interface (it probes by making one; no option turns that
off). Like lab-network on the VMs, the test creates the interface first; on a
kernel without XFRM interface support (this machine's) that fails, and then
the test proves less, and says so: the conn must be refused for that reason
and no other (same load, no other warning), and the same conn without its
`ipsec-interface=` line must load cleanly. That the kernel-side interface
works is left to the end-to-end tests in VMs.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT, TEST_MASTER_SECRET, parse_lab
from lablib import names, payload, render
from lablib.keys import derive_psk
from lablib.tunnel import ConnEnd, spoke_tunnel

IN_ROOT = ROOT / "scripts" / "in-root.sh"
SUITES = {"bookworm": 4, "trixie": 5}  # Debian suite -> libreswan major version
WAN = names.WAN_INTERFACE  # as on the VMs
VARIANTS: dict[str, dict[str, Any]] = {
    "xfrm-defaults": {},
    "vti-defaults": {"interfaceMode": "vti"},
    "vti-three-spokes": {"interfaceMode": "vti", "spokes": 3, "routedSpokes": [2], "tunnelMark": 7,
                         "dpdDelay": 30, "retransmitTimeout": 30, "ike": "aes256-sha2_512;dh20",
                         "esp": "aes_gcm256-null"},
    "vti-cbc": {"interfaceMode": "vti", "ike": "aes_gcm256-sha2_384;dh21", "esp": "aes256-sha2_512"},
    "xfrm-chacha": {"tunnelMark": 5, "greKey": False, "ike": "aes128-sha2;dh19",
                    "esp": "chacha20_poly1305-null"},
}

# Runs inside the tree, in fresh network + PID namespaces: $1 = work dir,
# $2 = WAN address/prefix, $3 = default gateway or "", $4 = XFRM interface
# to create (as lab-network does) or "", $5 = push (hub) or boot (spoke),
# then the conn names. Each step's output and exit code go to $1/NAME[.rc].
DRIVER = r"""
set -eu
out=$1 addr=$2 gw=$3 xfrmi=$4 mode=$5; shift 5
run() { name=$1; shift; rc=0; "$@" > "$out/$name" 2>&1 || rc=$?; echo $rc > "$out/$name.rc"; }
ip link set lo up
ip link add WAN type veth peer name WAN-peer
ip addr add "$addr" dev WAN
ip link set WAN up; ip link set WAN-peer up
[ -z "$gw" ] || ip route add default via "$gw"
echo no > "$out/xfrmi"
if [ -n "$xfrmi" ] && ip link add "$xfrmi" type xfrm dev WAN if_id "${xfrmi#ipsec}" 2>/dev/null; then
	echo yes > "$out/xfrmi"
fi
ipsec --version > "$out/version"
ipsec checknss >/dev/null 2>&1 || ipsec initnss >/dev/null
install -D -m 0755 "$out/compat.sh" COMPAT
install -D -m 0755 "$out/updown.sh" UPDOWN
cp "$out"/etc/* IPSEC_DIR/
if [ "$mode" = boot ]; then
	COMPAT
	run checkconfig ipsec addconn --config IPSEC_CONF --checkconfig
fi
printf 'config setup\n' > "$out/startup.conf"
mkdir -p /run/pluto
ipsec pluto --config "$out/startup.conf" --nofork --logfile "$out/pluto.log" &
i=0
until ipsec whack --status >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "pluto did not start" >&2; exit 1; }
	sleep 0.1
done
wc -c < "$out/pluto.log" > "$out/log-start"
if [ "$mode" = push ]; then
	for conn; do run "$conn.load" sh "$out/$conn.up"; done
	run checkconfig ipsec addconn --config IPSEC_CONF --checkconfig
else
	run secrets ipsec whack --rereadsecrets
	for conn; do run "$conn.load" ipsec addconn --config IPSEC_CONF "$conn"; done
fi
ipsec whack --status > "$out/status"
if [ "$mode" = push ]; then
	for conn; do
		run "$conn.again" sh "$out/$conn.up"
		run "$conn.down" sh "$out/$conn.down"
		run "$conn.down-again" sh "$out/$conn.down"
	done
fi
ipsec whack --shutdown >/dev/null
wait
""".replace("WAN", WAN).replace("COMPAT", names.LAB_IPSEC_COMPAT).replace("UPDOWN", names.LAB_UPDOWN).replace(
    "IPSEC_DIR", names.IPSEC_DIR).replace("IPSEC_CONF", names.IPSEC_CONF)

ADDED = '"{conn}": added IKEv2 connection'
# What pluto logs when it loads a conn, and nothing else is allowed about it.
LOAD_LOG = [r'"{conn}": (IKE|Child) SA proposals \(connection add\):', r'"{conn}":   \d+:(IKE|ESP)=\S+',
            r'"{conn}": added IKEv2 connection',
            r'"{conn}": oriented IKEv2 connection \(local: left=\S+  remote: right=\S+\)']
# The kernel-side refusal of ipsec-interface= (4.10, 5.x), when the kernel lacks XFRM interfaces.
NO_XFRMI = [r'"{conn}": failed to add connection: ipsec-interface=\d+ (is )?not supported.*',
            r'ERROR: "{conn}": NLMSG_ERROR in nl_query_small_resp\(\) for ip_kink_add_xfrmi\(\) '
            r'dev ipsec1: Operation not supported \(errno 95\)']
# This machine, not the conns: pluto's helper threads start without seccomp; 4.10 does not
# parse an XFRM notification of this newer host kernel (the VMs run their own kernel).
HOST = [r"helper\(\d+\):? seccomp security for helper not supported",
        r"netlink_expire got message with length \d+ < \d+ bytes; ignore message"]
TROUBLE = re.compile(r"warn|error|obsolete|deprecat|fail|not supported|ignor|invalid|unknown", re.IGNORECASE)
LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d+: (.*)$")


@dataclass
class Side:
    """What one side loads, and how: its WAN address, its conns, their files and push scripts."""

    name: str
    mode: str  # "push": the hub push's scripts; "boot": as a spoke's first boot
    address: str
    gateway: str
    ends: list[ConnEnd]
    files: list[render.PayloadFile]
    scripts: dict[str, tuple[str, str]]  # conn -> the hub push's up and down script


@dataclass
class Load:
    """One pluto run: each step's exit code and output."""

    version: str
    xfrmi: bool  # the XFRM interface could be made (as lab-network does on the VMs)
    steps: dict[str, tuple[int, str]]  # checkconfig, secrets (boot), C.load; push: C.again, C.down, C.down-again
    status: str
    log: list[str]  # pluto's log from the first load on, timestamps cut


def ipsec_steps(script: str) -> str:
    """A push script without its Open vSwitch and MTU lines (no OVS here, no VTI device)."""
    return "".join(line for line in script.splitlines(keepends=True)
                   if not line.startswith(("ovs-vsctl ", "ip link set ")))


def sides(overrides: dict[str, Any]) -> list[Side]:
    """The hub with every spoke's conn, and spoke1 with its one."""
    spec = parse_lab(**overrides)
    plan = spec.plan
    psks = {spoke.name: derive_psk(TEST_MASTER_SECRET, plan.hub.ike_id, spoke.ike_id) for spoke in plan.spokes}
    tunnels = [spoke_tunnel(spec, spoke) for spoke in plan.spokes]
    hub_sides = [payload.hub_side(spec, tunnel) for tunnel in tunnels]
    hub_ends = [tunnel.hub_end for tunnel in tunnels]
    scripts = {side.end.conn_name: (ipsec_steps(side.up_script), ipsec_steps(side.down_script)) for side in hub_sides}
    spoke = plan.spokes[0]
    spoke_ends = [tunnels[0].spoke_end]
    return [
        Side(plan.hub.name, "push", f"{plan.hub.wan_address}/{plan.hub.wan_subnet.prefixlen}", "", hub_ends,
             [f for end, s in zip(hub_ends, plan.spokes) for f in payload.tunnel_files(end, psks[s.name])], scripts),
        Side(spoke.name, "boot", f"{spoke.wan_address}/{spoke.wan_subnet.prefixlen}", str(spoke.wan_gateway),
             spoke_ends, payload.tunnel_files(spoke_ends[0], psks[spoke.name]), {}),
    ]


def run_pluto(suite: str, side: Side, files: list[render.PayloadFile], xfrmi: str, work: Path,
              compat: str | None = None) -> Load:
    """Start pluto in the suite's tree, give it side's conns from files, return what it all said.

    compat: the script that fits the files to the version; the VMs' own by default.
    """
    (work / "etc").mkdir(parents=True)
    for file in files:
        (work / "etc" / Path(file.path).name).write_text(file.content)
    (work / "compat.sh").write_text(render.render_ipsec_compat() if compat is None else compat)
    (work / "updown.sh").write_text(render.render_updown())
    for conn, (up, down) in side.scripts.items():
        (work / f"{conn}.up").write_text(up)
        (work / f"{conn}.down").write_text(down)
    conns = [end.conn_name for end in side.ends]
    result = subprocess.run(
        [str(IN_ROOT), "--suite", suite, "unshare", "--net", "--pid", "--fork", "--mount-proc",
         "sh", "-c", DRIVER, "driver", str(work), side.address, side.gateway, xfrmi, side.mode, *conns],
        cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{suite} {side.name}: driver failed: {result.stdout}{result.stderr}"

    def read(name: str) -> str:
        return (work / name).read_text()

    start = int(read("log-start"))
    return Load(
        version=read("version").strip(), xfrmi=read("xfrmi").strip() == "yes",
        steps={p.stem: (int(p.read_text()), read(p.stem)) for p in work.glob("*.rc")},
        status=read("status"),
        log=[LOG_LINE.sub(r"\1", line) for line in read("pluto.log")[start:].splitlines()])


def unexpected(text: str | list[str], conns: list[str], allowed: list[str]) -> list[str]:
    """Lines about one of conns that no allowed pattern matches, and any line that sounds like trouble.

    A spoke's conn (auto=start) is also started on load; its SA's lines ("C" #1: ...) only
    have to sound like no trouble (its peer is not there).
    """
    lines = text.splitlines() if isinstance(text, str) else text
    patterns = [re.compile(p.format(conn=re.escape(c))) for c in conns for p in allowed + HOST]
    bad = []
    for line in lines:
        line = re.sub(r"^(\d{3} |addconn: )", "", line)  # 4.x whack's code; 5.x's copy of addconn's output
        if not line or any(p.fullmatch(line) for p in patterns):
            continue
        if TROUBLE.search(line) or any(f'"{c}":' in line for c in conns):
            bad.append(line)
    return bad


def without_ipsec_interface(files: list[render.PayloadFile]) -> list[render.PayloadFile]:
    return [render.PayloadFile(f.path, f.mode, re.sub(r"(?m)^\s*ipsec-interface=.*\n", "", f.content))
            for f in files]


@pytest.fixture(scope="module", params=sorted(SUITES))
def suite(request: pytest.FixtureRequest) -> str:
    """A tree that is missing or holds the wrong libreswan fails every test of its suite."""
    name = request.param
    probe = subprocess.run([str(IN_ROOT), "--suite", name, "ipsec", "--version"], capture_output=True, text=True)
    assert probe.returncode == 0, f"no {name} tree ({probe.stderr.strip()}): run `make deps`"
    assert re.search(rf"Libreswan {SUITES[name]}\.", probe.stdout), f"{name}: {probe.stdout}"
    return name


def check_clean_load(load: Load, side: Side, major: int, where: str) -> None:
    """Every step exited 0 and said nothing unexpected; liveness as the version should run it."""
    conns = [end.conn_name for end in side.ends]
    for step, (code, out) in sorted(load.steps.items()):
        assert code == 0 and unexpected(out, conns, [ADDED]) == [], f"{where} {step}: exit {code}:\n{out}"
    assert load.steps["checkconfig"][1] == "", where
    assert unexpected(load.log, conns, LOAD_LOG) == [], f"{where}: " + "\n".join(load.log)
    if side.mode == "push" and not side.ends[0].uses_cert:  # the hub's landing conn too (lablib/tunnel.py)
        landing = [names.LANDING_CONN]
        assert unexpected(load.log, landing, LOAD_LOG) == [], f"{where}: " + "\n".join(load.log)
        assert f'"{names.LANDING_CONN}": added IKEv2 connection' in load.log, where
        assert f'"{names.LANDING_CONN}":' in load.status, f"{where}: the landing conn is not loaded"
    for end in side.ends:
        conn = end.conn_name
        assert f'"{conn}": added IKEv2 connection' in load.log, where
        if major >= 5:
            assert ADDED.format(conn=conn) in load.steps[f"{conn}.load"][1].splitlines(), where
        liveness = re.search(rf'"{conn}":\s+liveness: active; (?:dpdaction:(\w+); )?dpddelay:(\d+)s', load.status)
        assert liveness, f"{where}: no liveness line for {conn} in\n{load.status}"
        assert liveness.groups() == (end.dpd_action if major < 5 else None, str(end.dpd_delay)), f"{where} {conn}"
        timeout = re.search(rf'"{conn}":\s+.*retransmit-timeout: (\d+)s', load.status)
        assert timeout and int(timeout.group(1)) == end.retransmit_timeout, f"{where} {conn}: {load.status}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_conn_loads_into_pluto_without_a_warning(suite: str, variant: str, tmp_path: Path) -> None:
    major = SUITES[suite]
    for side in sides(VARIANTS[variant]):
        conns = [end.conn_name for end in side.ends]
        end = side.ends[0]
        xfrmi = end.interface_name if end.interface_mode == "xfrm" else ""
        load = run_pluto(suite, side, side.files, xfrmi, tmp_path / side.name)
        where = f"{suite} ({load.version}) {variant} {side.name}"
        assert load.version.startswith(f"Libreswan {major}."), where
        if xfrmi and not load.xfrmi:
            # This kernel cannot make the XFRM interface: pluto must refuse for that reason only...
            assert load.steps["checkconfig"] == (0, ""), f"{where}: {load.steps['checkconfig']}"
            for conn in conns:
                code, out = load.steps[f"{conn}.load"]
                assert code != 0 and unexpected(out, conns, [ADDED] + NO_XFRMI) == [], f"{where} {conn}: {out}"
            assert unexpected(load.log, conns, LOAD_LOG + NO_XFRMI) == [], f"{where}: " + "\n".join(load.log)
            for conn in conns:
                assert any(f'"{conn}": failed to add connection: ipsec-interface=' in line for line in load.log), \
                    f"{where} {conn}: " + "\n".join(load.log)
            # ...and everything else in the conn must load cleanly.
            load = run_pluto(suite, side, without_ipsec_interface(side.files), "", tmp_path / f"{side.name}-twin")
            where += " (without ipsec-interface=: this kernel has no XFRM interfaces)"
        check_clean_load(load, side, major, where)


@pytest.mark.parametrize("suite_name", sorted(SUITES))
def test_the_checks_see_what_the_compat_step_prevents(suite_name: str, tmp_path: Path) -> None:
    """Without lab-ipsec-compat, 5.x warns about dpdaction= (seen); without dpdaction=, 4.x holds (seen)."""
    for side in sides({"interfaceMode": "vti"}):
        conn = side.ends[0].conn_name
        files = side.files
        if SUITES[suite_name] < 5:
            files = [render.PayloadFile(f.path, f.mode, re.sub(r"\tdpdaction=\w+\n", "", f.content)) for f in files]
        load = run_pluto(suite_name, side, files, "", tmp_path / side.name, compat="true\n")
        with pytest.raises(AssertionError):
            check_clean_load(load, side, SUITES[suite_name], suite_name)
        if SUITES[suite_name] < 5:
            assert f'"{conn}":   liveness: active; dpdaction:hold;' in load.status
        else:
            assert f"obsolete keyword ignored: dpdaction={side.ends[0].dpd_action}" in load.steps["checkconfig"][1]
            assert f"obsolete keyword ignored: dpdaction={side.ends[0].dpd_action}" in load.steps[f"{conn}.load"][1]
