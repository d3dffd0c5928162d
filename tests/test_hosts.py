"""lab:hosts and lab:spokeHosts: URIs as the provider reads them, placement, outputs per host."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import string
from collections import Counter

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from harness import ROOT, Run, mock_secrets, parse_lab, project_config, run_program, stack_values
from lablib import report
from lablib.config import ConfigError, LabSpec, parse_config
from lablib.hostcheck import check_login
from lablib.hosts import HOSTS, SPOKE_HOSTS, Host, check_uri, place, plan_hosts

A = {"name": "a", "uri": "qemu:///system", "uplink": "172.31.0.1"}
B = {"name": "b", "uri": "qemu+ssh://root@172.31.0.2/system", "uplink": "172.31.0.2"}


def on_hosts(hosts: object, pins: object = None, **overrides: object) -> LabSpec:
    """The lab of overrides, placed on hosts."""
    spec = parse_lab(**overrides)
    placed = dataclasses.replace(spec, hosts=plan_hosts(json.dumps(hosts), json.dumps(pins or {}), spec.plan))
    assert parse_lab(**overrides, hosts=hosts, **({SPOKE_HOSTS: pins} if pins else {})) == placed
    return placed


def test_without_hosts_the_lab_is_todays_one_host() -> None:
    spec = parse_lab()
    assert spec.hosts.hosts == () and not spec.hosts.several
    assert spec.hosts.host_of("hub") is None
    assert "host" not in report.nodes(spec)["hub"] and "libvirt_host" not in report.inventory_yaml(spec)
    one = on_hosts([B])  # one host named: the same outputs
    assert (report.nodes(one), report.inventory_yaml(one), report.mermaid(one)) == (
        report.nodes(spec), report.inventory_yaml(spec), report.mermaid(spec))


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Host, ...]]:
    """The program's login check, recorded instead of dialing (the e2e test logs in to real hosts)."""
    calls: list[tuple[Host, ...]] = []
    monkeypatch.setattr("lablib.hostcheck.check_logins", calls.append)
    return calls


def on_provider(run: Run) -> dict[str, str]:
    """Resource name -> the URI of its explicit provider ("" for the default provider)."""
    uris = {r.name: r.inputs["uri"] for r in run.of_type("pulumi:providers:libvirt")}
    # A provider reference is its URN (ending in ::NAME) and its ID, joined by ::.
    return {r.name: uris[r.provider.split("::")[-2]] if r.provider else "" for r in run.resources if r.custom}


def test_the_program_builds_every_site_on_its_host(logins: list[tuple[Host, ...]]) -> None:
    """Hub and spoke2 (routed) on a, spoke1 and spoke3 (NAT'd) on b: each host gets its own pool, uploads, management
    network and the WANs of its sites; the hosts are checked first; the hub push needs no jump host
    (the hub's host is this machine)."""
    run = run_program(stack_values({"spokes": 3, "routedSpokes": [2], HOSTS: json.dumps([A, B])}))
    assert [[host.name for host in call] for call in logins] == [["a", "b"]]
    uri = on_provider(run)
    a, b = A["uri"], B["uri"]
    assert {name: uri[name] for name in uri if name.endswith(("-domain", "-pool-a", "-pool-b"))} == {
        "lab-hub-domain": a, "lab-spoke1-domain": b, "lab-spoke2-domain": a, "lab-spoke3-domain": b,
        "lab-storage-pool-a": a, "lab-storage-pool-b": b}
    assert (uri["lab-storage-a-base"], uri["lab-storage-b-base"]) == (a, b)  # the image reaches b over libvirt
    assert (uri["lab-networks-mgmt-a"], uri["lab-networks-mgmt-b"]) == (a, b)
    assert [uri[f"lab-networks-wan-{site}"] for site in ("hub", "spoke1", "spoke2", "spoke3")] == [a, b, a, b]
    assert uri["lab-spoke1-disk"] == uri["lab-spoke1-cloudinit"] == b
    domain = run.named("lab-spoke1-domain").inputs
    assert domain["disks"][0]["volumeId"] == "lab-spoke1-disk-id"
    assert [nic["networkId"] for nic in domain["networkInterfaces"]] == [
        "lab-networks-wan-spoke1-id", "lab-networks-mgmt-b-id"]
    assert "jumpUri" not in run.named("lab-spoke1-tunnel-hub-side").inputs
    hosts = {h["name"]: h for h in run.outputs["hosts"]}
    assert hosts["b"]["sites"] == ["spoke1", "spoke3"] and hosts["a"]["sites"] == ["hub", "spoke2"]
    # b reaches the hub's and spoke2's routed WANs through a; a needs no route (spoke1 and 3 are NAT'd).
    plan = parse_lab(spokes=3, routedSpokes=[2]).plan
    assert hosts["b"]["routes"] == [{"to": str(site.wan_subnet), "via": A["uplink"]}
                                    for site in (plan.hub, plan.spokes[1])]
    assert hosts["a"]["routes"] == []


def test_a_hub_on_a_remote_host_is_pushed_through_that_host(logins: list[tuple[Host, ...]]) -> None:
    run = run_program(stack_values({"spokes": 1, HOSTS: json.dumps([B, A])}))
    assert run.named("lab-spoke1-tunnel-hub-side").inputs["jumpUri"] == B["uri"]
    assert on_provider(run)["lab-hub-domain"] == B["uri"]


def test_one_host_lab_declares_what_it_always_did(logins: list[tuple[Host, ...]]) -> None:
    """No lab:hosts: no provider resource, no per-host name, no hosts output, no login check."""
    run = run_program(stack_values({"spokes": 2}))
    assert not run.of_type("pulumi:providers:libvirt") and "hosts" not in run.outputs
    assert all(provider == "" for provider in on_provider(run).values())
    assert {"lab-storage-pool", "lab-storage-base", "lab-networks-mgmt"} <= {r.name for r in run.resources}
    assert logins == [()]


def test_two_hosts_hub_first_spokes_spread() -> None:
    spec = on_hosts([A, B], spokes=3)
    placed = dict(spec.hosts.placement)
    assert placed == {"hub": "a", "spoke1": "b", "spoke2": "a", "spoke3": "b"}
    assert spec.hosts.host_of("spoke1").uri == B["uri"]
    nodes = report.nodes(spec)
    assert [nodes[site]["host"] for site in ("hub", "spoke1", "spoke2")] == ["a", "b", "a"]
    inventory = yaml.safe_load(report.inventory_yaml(spec))
    assert inventory["all"]["children"]["spokes"]["hosts"]["spoke3"]["libvirt_host"] == "b"
    assert "spoke1<br/>WAN 192.168.2.10<br/>overlay 240.0.0.2<br/>on b" in report.mermaid(spec)


def test_pins_win_and_unpinned_spokes_fill_the_emptiest_host() -> None:
    spec = on_hosts([A, B], {"1": "a", "2": "a"}, spokes=4)
    assert dict(spec.hosts.placement) == {"hub": "a", "spoke1": "a", "spoke2": "a", "spoke3": "b", "spoke4": "b"}


@pytest.mark.parametrize(("overrides", "key", "message"), [
    ({"hosts": [A, {**B, "name": "a"}]}, HOSTS, "name of two hosts"),
    ({"hosts": [A, {**B, "uri": A["uri"]}]}, HOSTS, "uri of two hosts"),
    ({"hosts": [A, {**B, "uplink": A["uplink"]}]}, HOSTS, "uplink of two hosts"),
    ({"hosts": [A, {**B, "uplink": "192.168.1.7"}]}, HOSTS, "lab:hubSubnet"),
    ({"hosts": [A, {**B, "uplink": "192.168.3.1"}]}, HOSTS, "spoke2's WAN subnet"),
    ({"hosts": [A, {**B, "uplink": "10.10.0.9"}]}, HOSTS, "lab:mgmtSubnet"),
    ({"hosts": [A, {**B, "uplink": "127.0.0.2"}]}, HOSTS, "loopback"),
    ({"hosts": [A, {**B, "uplink": "host-b"}]}, HOSTS, "IPv4 address"),
    ({"hosts": [{**A, "name": "Host A"}]}, HOSTS, "host name"),
    ({"hosts": [{"name": "a", "uri": "qemu:///system"}]}, HOSTS, "exactly name, uri, uplink"),
    ({"hosts": {"a": A}}, HOSTS, "list"),
    ({"spokeHosts": {"1": "b"}, "hosts": [A]}, SPOKE_HOSTS, "unknown host 'b'"),
    ({"spokeHosts": {"3": "a"}, "hosts": [A]}, SPOKE_HOSTS, "spoke number from 1 to 2"),
    ({"spokeHosts": {"01": "a"}, "hosts": [A]}, SPOKE_HOSTS, "spoke number"),
    ({"spokeHosts": {"1": "a"}}, SPOKE_HOSTS, "names no host"),
    ({"spokeHosts": ["a"]}, SPOKE_HOSTS, "map of spoke number"),
])
def test_bad_hosts_config_names_key_and_value(overrides: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_lab(**overrides)  # refused before the not-used-yet gate
    assert caught.value.key == key


@pytest.mark.parametrize(("uri", "message"), [
    ("qemu+ssh://root@hostb:2222/system", "must not give a port"),
    ("qemu+ssh://hostb/system", "must name the SSH user"),
    ("qemu+ssh://root:hunter2@hostb/system", "password"),
    ("qemu+ssh://root:hunter2@hostb:2222/session", "password"),
    ("qemu+tcp://root:hunter2@hostb/system", "password"),
    ("qemu+ssh://root@hostb/session", "/system"),
    ("qemu+tcp://hostb/system", "scheme 'qemu\\+tcp'"),
    ("qemu:///session", "scheme 'qemu'"),
    ("qemu+ssh://root@hostb/system?known_hosts=/k", "knownhosts=PATH"),
    ("qemu+ssh://root@hostb/system?no_tty=1", "ignores"),
    ("qemu+ssh://root@hostb/system?keyfile=id", "absolute path"),
    ("qemu+ssh://root@hostb/system?known_hosts_verify=auto", "no auto"),
    ("qemu+ssh://root@hostb/system?sshauth=password", "agent and privkey"),
    ("qemu+ssh://root@hostb/system?keyfile=/a&keyfile=/b", "twice"),
    ("qemu+ssh://root@hostb/system?bogus=1", "unknown parameter"),
    ("qemu+ssh://root@[::1/system", "does not parse"),
])
def test_uri_refused_where_the_provider_would_misread_it(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_uri(uri)
    assert caught.value.key == HOSTS
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("uri", [
    "qemu:///system",
    "qemu+ssh://root@10.250.0.2/system",
    "qemu+ssh://lab-admin@hv2.example.net/system?keyfile=/root/.ssh/lab&knownhosts=/root/.ssh/lab_known",
    "qemu+ssh://root@hv2/system?no_verify=1&sshauth=privkey",
    "qemu+ssh://root@hv2/system?known_hosts_verify=ignore&socket=/run/libvirt/libvirt-sock",
])
def test_uri_the_provider_reads_is_kept_as_written(uri: str) -> None:
    assert check_uri(uri) == uri


def test_example_stack_places_the_issues_two_host_lab() -> None:
    """stacks/two-hosts.example.yaml: declared types and the issue's placement."""
    example = yaml.safe_load((ROOT / "stacks" / "two-hosts.example.yaml").read_text())["config"]
    values = {key.split(":", 1)[1]: value for key, value in example.items()}
    declared = project_config()
    assert all(key in declared for key in values)
    assert isinstance(values[HOSTS], list) and isinstance(values[SPOKE_HOSTS], dict)
    lab = {key: values[key] for key in ("spokes", "routedSpokes")}
    spec = on_hosts(values[HOSTS], values[SPOKE_HOSTS], **lab)
    assert dict(spec.hosts.placement) == {"hub": "a", "spoke1": "b", "spoke2": "a"}
    assert spec.plan.spokes[0].behind_nat and not spec.plan.spokes[1].behind_nat
    grown = on_hosts(values[HOSTS], values[SPOKE_HOSTS], **{**lab, "spokes": 3})  # spoke3 joins b; no one moves
    assert dict(grown.hosts.placement) == {"hub": "a", "spoke1": "b", "spoke2": "a", "spoke3": "b"}


def test_login_check_names_the_host_before_any_connection(tmp_path) -> None:
    """No known hosts file: refused before dialing (the e2e test logs in to real sshds)."""
    uplink = ipaddress.IPv4Address("192.0.2.1")
    check_login(Host("a", "qemu:///system", uplink))  # nothing to check
    missing = tmp_path / "known_hosts"
    host = Host("b", f"qemu+ssh://root@192.0.2.1/system?knownhosts={missing}", uplink)
    with pytest.raises(ConfigError, match=f"host b .* cannot be verified: known hosts file {missing}") as caught:
        check_login(host)
    assert caught.value.key == HOSTS and "nothing was created" in str(caught.value)


def test_placement_grows_without_moving_a_site() -> None:
    hosts = ["a", "b", "c"]
    small, large = place(4, hosts, {2: "c"}), place(9, hosts, {2: "c"})
    assert all(large[n] == host for n, host in small.items())
    assert Counter(place(8, hosts, {}).values()) == {"a": 3, "b": 3, "c": 3}


# --- property: any hosts config is one ConfigError naming the key, or a sound placement ---

NAMES = st.sampled_from(["a", "b", "c", "hv-2", "A", "", "a b", "x" * 40, 7])
URIS = st.one_of(st.sampled_from([
    "qemu:///system", "qemu+ssh://root@172.31.0.2/system", "qemu+ssh://root@172.31.0.3/system",
    "qemu+ssh://root@h:22/system", "qemu+ssh://h/system", "qemu+ssh://root@h/system?keyfile=/k",
    "qemu+ssh://root@h/system?known_hosts=/k", "qemu+ssh://u:p@h/system", "qemu+ssh://root@[::1]/system",
    "qemu+ssh://root@h/system#x", "qemu+ssh://root@h/system?", "qemu+ssh://root@h/system?=&&"]),
    st.text(alphabet=string.printable, max_size=40), st.none())
UPLINKS = st.one_of(st.sampled_from(["172.31.0.1", "172.31.0.2", "192.168.1.10", "10.20.0.3", "0.0.0.0",
                                     "255.255.255.255", "1.2.3", "240.1.1.1"]), st.integers(), st.none())
HOST = st.one_of(
    st.fixed_dictionaries({"name": NAMES, "uri": URIS, "uplink": UPLINKS}),
    st.dictionaries(st.sampled_from(["name", "uri", "uplink", "port"]), st.text(max_size=5), max_size=4),
    st.text(max_size=5), st.integers())
GOOD = [A, B, {"name": "c", "uri": "qemu+ssh://lab@c.example/system?keyfile=/k", "uplink": "172.31.0.3"}]
GOOD_HOSTS = st.permutations(GOOD).flatmap(lambda hosts: st.integers(1, 3).map(lambda k: list(hosts[:k])))
GOOD_PINS = st.dictionaries(st.sampled_from(["1", "2", "3"]), st.sampled_from(["a", "b", "c"]), max_size=3)
BAD_SPOKES = st.sampled_from(["1", "2", "3", "0", "01", "251", "x", "-1", " 1"])
PINS = st.one_of(GOOD_PINS, GOOD_PINS, st.dictionaries(BAD_SPOKES,
                                 st.one_of(NAMES, st.none()), max_size=4), st.lists(st.integers(), max_size=2))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(GOOD_HOSTS, GOOD_HOSTS, st.lists(HOST, max_size=4)), PINS, st.integers(min_value=1, max_value=5),
       st.sampled_from(["json", "json", "json", "text"]), st.text(max_size=30))
def test_any_hosts_config_is_one_config_error_or_a_sound_placement(hosts, pins, spokes, form, text) -> None:
    raw = stack_values({"spokes": spokes}, secrets=False)
    raw[HOSTS], raw[SPOKE_HOSTS] = (json.dumps(hosts), json.dumps(pins)) if form == "json" else (text, "{}")
    try:
        parsed = parse_config({**raw, HOSTS: "[]", SPOKE_HOSTS: "{}"}, mock_secrets())
        spec = dataclasses.replace(parsed, hosts=plan_hosts(raw[HOSTS], raw[SPOKE_HOSTS], parsed.plan))
    except ConfigError as error:
        assert error.key in (HOSTS, SPOKE_HOSTS), error
        assert len(str(error)) < 1000 and ":p@" not in str(error)
        event(f"ConfigError lab:{error.key}")
        return
    event(f"{len(spec.hosts.hosts)} hosts")
    plan = spec.hosts
    names = [host.name for host in plan.hosts]
    assert len(set(names)) == len(names) == len({h.uri for h in plan.hosts}) == len({h.uplink for h in plan.hosts})
    if not names:
        assert plan.placement == ()
        return
    placed = dict(plan.placement)
    assert set(placed) == {site.name for site in spec.plan.sites} and set(placed.values()) <= set(names)
    assert placed["hub"] == names[0]
    for number, host in dict(pins).items():
        assert placed[f"spoke{number}"] == host
    if not pins:  # spread evenly: site counts differ by at most one
        counts = Counter(placed.values())
        assert max(counts.values()) - min(counts.get(name, 0) for name in names) <= 1


def test_docs_show_the_example_stack_as_it_is() -> None:
    example = (ROOT / "stacks" / "two-hosts.example.yaml").read_text()
    page = (ROOT / "docs" / "several-hosts.md").read_text()
    assert f"```yaml\n{example[example.index('config:'):].rstrip()}\n```" in page
