"""The whole program under Pulumi mocks: what it declares, and that secrets stay secret."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from harness import ROOT, boot_files, SECRET_SIG, TEST_MASTER_SECRET, Run, load_stack, project_config, run_program, stack_values
from lablib import names
from lablib.keys import derive_psk

COMPONENT = "lab:index:"
DOMAIN, NETWORK, VOLUME = "libvirt:index/domain:Domain", "libvirt:index/network:Network", "libvirt:index/volume:Volume"
CLOUDINIT, POOL = "libvirt:index/cloudInitDisk:CloudInitDisk", "libvirt:index/pool:Pool"
HUB_SIDE = "pulumi-python:dynamic:Resource"
STACKS = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


@cache
def run_spokes(spokes: int) -> Run:
    return run_program(stack_values({"spokes": spokes}))


def unwrap(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and SECRET_SIG in value else value


@pytest.mark.parametrize("spokes", [1, 2, 5, 100])
def test_resource_counts(spokes: int) -> None:
    run = run_spokes(spokes)
    counts = {typ: len(run.of_type(typ)) for typ in (DOMAIN, NETWORK, VOLUME, CLOUDINIT, POOL, HUB_SIDE)}
    assert counts == {
        DOMAIN: spokes + 1,
        NETWORK: spokes + 2,  # management + hub WAN + one WAN per spoke
        VOLUME: spokes + 2,  # base image + one linked clone per VM
        CLOUDINIT: spokes + 1,
        POOL: 1,
        HUB_SIDE: spokes,  # each spoke's conn pushed to the running hub
    }
    components = [r.typ for r in run.resources if r.typ.startswith(COMPONENT)]
    assert sorted(set(components)) == [f"{COMPONENT}{n}" for n in
                                       ("Lab", "LabNetworks", "LabNode", "LabStorage", "Tunnel")]
    assert components.count(f"{COMPONENT}Tunnel") == spokes
    assert components.count(f"{COMPONENT}LabNode") == spokes + 1


def test_direct_kernel_boot_adds_kernel_and_initrd_volumes() -> None:
    run = run_program(stack_values({"kernel": str(boot_files() / "vmlinuz"), "initrd": str(boot_files() / "initrd.img"),
                                    "kernelCmdline": "root=/dev/vda rw console=ttyS0"}))
    assert len(run.of_type(VOLUME)) == 1 + 3 + 2  # base, three clones, kernel, initrd
    domain = run.named("lab-hub-domain").inputs
    assert domain["cmdlines"] == [{"root": "/dev/vda", "console": "ttyS0"}, {"_": "rw"}]


def test_child_names_derive_from_the_component_name() -> None:
    names = {r.name for r in run_spokes(2).resources}
    assert {"lab-hub", "lab-hub-domain", "lab-hub-disk", "lab-hub-cloudinit", "lab-spoke2-tunnel",
            "lab-spoke2-tunnel-hub-side", "lab-networks-wan-spoke2", "lab-storage-base"} <= names


@pytest.mark.parametrize("spokes", [1, 5])
def test_every_spoke_end_mirrors_the_hub_end(spokes: int) -> None:
    run = run_spokes(spokes)
    hub_wan = next(r for r in run.of_type(f"{COMPONENT}LabNode") if r.inputs["role"] == "hub").inputs["wanAddress"]
    for tunnel in run.of_type(f"{COMPONENT}Tunnel"):
        hub, spoke = tunnel.inputs["hubEnd"], tunnel.inputs["spokeEnd"]
        assert (hub["localId"], hub["remoteId"]) == (spoke["remoteId"], spoke["localId"])
        assert (hub["localOverlay"], hub["remoteOverlay"]) == (spoke["remoteOverlay"], spoke["localOverlay"])
        assert (hub["ike"], hub["esp"]) == (spoke["ike"], spoke["esp"])
        assert (hub["interfaceMode"], hub["tunnelMark"]) == (spoke["interfaceMode"], spoke["tunnelMark"])
        assert (hub["remoteAddress"], spoke["remoteAddress"]) == ("%any", hub_wan)
        psk = unwrap(tunnel.inputs["psk"])
        assert psk == derive_psk(TEST_MASTER_SECRET, hub["localId"], spoke["localId"]) and len(psk) >= 32
        # Both rendered payloads carry the same key: the spoke's cloud-init and the hub-side push.
        spoke_name = tunnel.inputs["spoke"]
        assert f'{spoke["localId"]} {spoke["remoteId"]} : PSK "{psk}"' in unwrap(
            run.named(f"lab-{spoke_name}-cloudinit").inputs["userData"])
        hub_files = unwrap(run.named(f"lab-{spoke_name}-tunnel-hub-side").inputs["files"])
        assert f'{hub["localId"]} {hub["remoteId"]} : PSK "{psk}"' in "".join(f["content"] for f in hub_files)
        assert f"conn {hub['connName']}" in "".join(f["content"] for f in hub_files)


def test_keys_are_unique_per_spoke() -> None:
    keys = [unwrap(t.inputs["psk"]) for t in run_spokes(100).of_type(f"{COMPONENT}Tunnel")]
    assert len(set(keys)) == 100


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in value that is NOT inside a secret."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return
        for item in value.values():
            yield from plain_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from plain_strings(item)
    elif isinstance(value, str):
        yield value


def test_no_key_or_private_key_appears_outside_a_secret() -> None:
    run = run_spokes(5)
    psks = {unwrap(t.inputs["psk"]) for t in run.of_type(f"{COMPONENT}Tunnel")}
    private_key = stack_values()["sshPrivateKey"]
    forbidden = psks | {TEST_MASTER_SECRET, private_key.strip().splitlines()[1]}
    exposed = [*plain_strings([r.inputs for r in run.resources]), *plain_strings(run.outputs)]
    leaks = [text for text in exposed for secret in forbidden if secret in text]
    assert not leaks
    assert psks and all(SECRET_SIG in t.inputs["psk"] for t in run.of_type(f"{COMPONENT}Tunnel"))


def test_outputs_give_addresses_ssh_mtu_inventory_and_diagram() -> None:
    outputs = run_spokes(2).outputs
    assert outputs["nodes"]["spoke1"]["sshCommand"] == f"ssh {names.SSH_USER}@10.10.0.3"
    assert outputs["nodes"]["hub"]["wanAddress"] == "192.168.1.10"
    assert outputs["tunnelMtu"] == 1438 and outputs["innerMtu"] == 1396
    inventory = yaml.safe_load(outputs["inventory"])
    assert set(inventory["all"]["children"]["spokes"]["hosts"]) == {"spoke1", "spoke2"}
    assert outputs["topology"].startswith("flowchart LR") and "spoke2 --" in outputs["topology"]


def test_bad_config_stops_the_program_before_any_resource() -> None:
    with pytest.raises(Exception, match="lab:spokes = '0' is invalid"):
        run_program(stack_values({"spokes": 0}))


def test_missing_master_secret_stops_the_program() -> None:
    values = stack_values()
    del values["masterSecret"]
    with pytest.raises(Exception, match="lab:masterSecret.*missing"):
        run_program(values)


TYPE_CHECKS = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_matches_the_declared_types(stack: str) -> None:
    declared = project_config()
    for key, value in load_stack(stack).items():
        assert key in declared, f"stacks/Pulumi.{stack}.yaml sets undeclared key lab:{key}"
        expected = TYPE_CHECKS[declared[key]["type"]]
        assert type(value) is expected, f"lab:{key} in {stack} is {type(value).__name__}, not {expected.__name__}"
        if expected is list:
            item_type = TYPE_CHECKS[declared[key]["items"]["type"]]
            assert all(type(item) is item_type for item in value)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_plans(stack: str) -> None:
    spokes = load_stack(stack).get("spokes", project_config()["spokes"]["default"])
    run = run_program(stack_values(stack=stack), stack=stack)
    assert len(run.of_type(DOMAIN)) == spokes + 1


def test_required_stacks_exist() -> None:
    assert {"dev", "ci", "scale"} <= set(STACKS)
    assert load_stack("scale")["spokes"] == 100
    ci = load_stack("ci")
    assert ci["spokes"] == 4 and len(ci["routedSpokes"]) == 1
    # each spoke a remedy of its own (spoke2: the computed MTU)
    assert ci["asDeployedSpokes"] == [1] and ci["kernelGreSpokes"] == [3] and ci["tcpSpokes"] == [4]


def test_declared_keys_are_the_keys_the_program_reads() -> None:
    from lablib.config import PLAIN_KEYS, SECRET_KEYS
    assert set(project_config()) == set(PLAIN_KEYS) | set(SECRET_KEYS)
    assert all(project_config()[key].get("secret") for key in SECRET_KEYS)
    assert Path(ROOT / "Pulumi.yaml").exists()


def test_remote_config_diff_updates_in_place_and_replaces_when_what_it_stands_for_changes() -> None:
    from providers.remote_config import RemoteConfigProvider
    old = {"host": "10.10.0.2", "user": names.SSH_USER, "name": "t", "files": [{"path": "/a", "content": "1"}],
           "upScript": "u", "downScript": "d"}
    diff = RemoteConfigProvider().diff
    assert not diff("id", old, dict(old)).changes
    for in_place in ({"files": [{"path": "/a", "content": "2"}]}, {"upScript": "u2"}, {"jumpUri": "qemu+ssh://h"}):
        changed = diff("id", old, {**old, **in_place})
        assert changed.changes and not changed.replaces, in_place
    assert diff("id", old, {**old, "host": "10.10.0.9"}).replaces == ["host"]
    # Another file, port or conn to remove: the old down script must run before the new push.
    assert diff("id", old, {**old, "downScript": "d2"}).replaces == ["downScript"]


def hub_sides(run: Run) -> dict[str, dict[str, Any]]:
    """Each spoke's hub-side inputs, secrets unwrapped."""
    return {r.name.split("-")[1]: {k: unwrap(v) for k, v in r.inputs.items()} for r in run.of_type(HUB_SIDE)}


def test_a_hub_side_is_deleted_before_its_replacement_is_pushed() -> None:
    """Old and new stand for the same files, port and conn on the hub: created first, the new one
    would be undone by the old one's down script (issue 17), also under `pulumi up --replace`."""
    assert all(r.delete_before_replace for r in run_spokes(2).of_type(HUB_SIDE))


def test_each_down_script_names_all_its_hub_side_puts_on_the_hub() -> None:
    """What the provider's diff relies on: a change of file, port or conn changes the down script. (Not
    lab-updown: every hub side pushes it, every conn on the hub names it, the hub's payload has it.)"""
    run = run_program(stack_values({"spokes": 3, "vtiSpokes": [2]}))
    tunnels = {t.inputs["spoke"]: t.inputs for t in run.of_type(f"{COMPONENT}Tunnel")}
    for spoke, side in hub_sides(run).items():
        assert side["files"][-1]["path"] == names.LAB_UPDOWN
        owned = [f["path"] for f in side["files"][:-1]] + [tunnels[spoke]["hubPort"]["name"],
                                                      tunnels[spoke]["hubEnd"]["connName"]]
        assert all(thing in side["downScript"] for thing in owned), (spoke, owned)


def test_neither_a_spoke_changing_mode_nor_growing_touches_a_hub_side() -> None:
    from providers.remote_config import RemoteConfigProvider
    diff = RemoteConfigProvider().diff
    before, grown = hub_sides(run_spokes(2)), hub_sides(run_spokes(5))
    assert all(not diff("id", before[spoke], grown[spoke]).changes for spoke in before)
    switched = hub_sides(run_program(stack_values({"spokes": 2, "vtiSpokes": [2]})))
    # The hub serves every spoke through its own interface mode: a spoke's change stays on the spoke.
    assert all(not diff("id", before[spoke], switched[spoke]).changes for spoke in before)


def test_every_hub_side_of_a_certificate_lab_waits_for_the_hubs_pki_push() -> None:
    """A 4.10 hub's first PKI push restarts pluto: a pre-shared-key spoke's hub side pushed before it
    would have its tunnel cut (cloud-init/pki-import.sh.j2)."""
    run = run_program(stack_values({"spokes": 3, "auth": "cert", "pskSpokes": [1]}))
    registered = {request.name: request for request in run.requests if hasattr(request, "dependencies")}
    push = next(name for name in registered if name.endswith("-pki-hub-push"))
    sides = [name for name in registered if name.endswith("-hub-side")]
    assert len(sides) == 3
    for side in sides:
        assert any(urn.endswith(f"::{push}") for urn in registered[side].dependencies), side
