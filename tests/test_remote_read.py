"""RemoteConfigProvider.read, what `pulumi refresh` runs for each spoke's hub side: a fake SSH
session answers as the hub would, drifted or not, or the hub cannot be reached."""
from __future__ import annotations

import hashlib
from typing import Any

import pytest

from harness import parse_lab
from lablib import names, payload
from lablib.tunnel import spoke_tunnel
from providers import remote_config
from providers.remote_config import DRIFT_MARK, RemoteConfigProvider, RemoteError

CONF, SECRETS = names.conn_conf_path("hub-spoke1"), names.conn_secrets_path("hub-spoke1")
PSK = "not-a-real-key"


def hub_side_props() -> dict[str, Any]:
    """spoke1's hub-side props as the component gives them."""
    spec = parse_lab()
    side = payload.hub_side(spec, spoke_tunnel(spec, spec.plan.spokes[0]))
    return {"name": "lab-spoke1-tunnel-hub-side", "host": "10.10.0.2", "user": names.SSH_USER, "privateKey": "k",
            "files": side.files(PSK), "upScript": side.up_script, "downScript": side.down_script,
            "checkScript": side.check_script, "readyTimeout": 900}


def listing(files: dict[str, str]) -> str:
    """sha256sum's output for these paths and contents."""
    return "".join(f"{hashlib.sha256(content.encode()).hexdigest()}  {path}\n" for path, content in files.items())


class FakeHub:
    """Answers the commands read runs: the digests of its files, and the check script's verdict."""

    def __init__(self, files: dict[str, str], check: tuple[int, str] = (0, "")) -> None:
        self.files, self.check, self.commands = files, check, []

    def execute(self, _client: object, command: str, stdin: str = "", timeout: float = 0) -> tuple[int, str, str]:
        self.commands.append((command, stdin))
        if command.startswith("sudo sha256sum"):
            return (0 if len(self.files) == 2 else 1), listing(self.files), ""
        assert command == "sudo sh -s" and "set -u" in stdin, command
        return self.check[0], self.check[1], ""


class FakeSession:
    client = object()

    def close(self) -> None:
        pass


@pytest.fixture
def props() -> dict[str, Any]:
    return hub_side_props()


def read(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any], hub: FakeHub) -> dict[str, Any]:
    monkeypatch.setattr(remote_config, "_connect", lambda _props, _timeout: FakeSession())
    monkeypatch.setattr(remote_config, "_execute", hub.execute)
    result = RemoteConfigProvider().read("10.10.0.2:lab-spoke1-tunnel-hub-side", props)
    assert result.id == "10.10.0.2:lab-spoke1-tunnel-hub-side"
    return result.outs


def as_pushed(props: dict[str, Any]) -> dict[str, str]:
    return {file["path"]: file["content"] for file in props["files"]}


def test_nothing_drifted_reads_back_the_same_outs(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]) -> None:
    hub = FakeHub(as_pushed(props))
    assert read(monkeypatch, props, hub) == props
    assert not RemoteConfigProvider().diff("id", read(monkeypatch, props, hub), props).changes
    assert all(PSK not in command for command, _ in hub.commands), "a secret went out on a command line"


def test_a_conn_file_as_lab_ipsec_compat_leaves_it_on_libreswan_5_is_no_drift(
        monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]) -> None:
    files = as_pushed(props)
    assert "dpdaction=" in files[CONF]
    files[CONF] = "".join(line for line in files[CONF].splitlines(keepends=True) if "dpdaction=" not in line)
    assert read(monkeypatch, props, FakeHub(files)) == props


@pytest.mark.parametrize("change", ["missing", "edited"])
def test_a_pushed_file_changed_on_the_hub_is_drift_the_next_update_pushes_again(
        monkeypatch: pytest.MonkeyPatch, props: dict[str, Any], change: str) -> None:
    files = as_pushed(props)
    if change == "missing":
        del files[SECRETS]
    else:
        files[SECRETS] += "# edited by hand\n"
    outs = read(monkeypatch, props, FakeHub(files))
    assert outs["upScript"].startswith(DRIFT_MARK) and SECRETS in outs["upScript"]
    assert PSK not in outs["upScript"]
    assert {**outs, "upScript": props["upScript"]} == props, "only upScript marks the drift"
    diff = RemoteConfigProvider().diff("id", outs, props)
    assert diff.changes and not diff.replaces, "an update in place pushes again"


def test_a_failing_check_is_drift_naming_what_it_found(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]) -> None:
    hub = FakeHub(as_pushed(props), check=(1, "GRE port gre-spoke1 not on br0\n"))
    outs = read(monkeypatch, props, hub)
    assert outs["upScript"] == f"{DRIFT_MARK} GRE port gre-spoke1 not on br0\n"
    assert hub.commands[-1][1] == props["checkScript"]
    assert RemoteConfigProvider().diff("id", outs, props).changes


def test_a_state_without_a_check_script_checks_the_files_only(monkeypatch: pytest.MonkeyPatch,
                                                               props: dict[str, Any]) -> None:
    """A stack made before the check script: its outs have none until its next update."""
    del props["checkScript"]
    hub = FakeHub(as_pushed(props))
    assert read(monkeypatch, props, hub) == props
    assert [command for command, _ in hub.commands] == [remote_config.digest_command(props["files"])]


def test_an_unreachable_hub_keeps_the_outs_and_warns(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def down(_props: dict[str, Any], timeout: float) -> None:
        assert timeout == remote_config.READ_TIMEOUT_SECONDS
        raise RemoteError("could not reach admin@10.10.0.2 over SSH within 15 s: timed out")
    monkeypatch.setattr(remote_config, "_connect", down)
    assert RemoteConfigProvider().read("id", props).outs == props
    assert "lab-spoke1-tunnel-hub-side" in capsys.readouterr().err


def test_a_command_that_fails_midway_keeps_the_outs(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]) -> None:
    def hung(*_args: object, **_kwargs: object) -> None:
        raise RemoteError("`sudo sha256sum ...` gave no exit status within 15 s")
    monkeypatch.setattr(remote_config, "_connect", lambda _props, _timeout: FakeSession())
    monkeypatch.setattr(remote_config, "_execute", hung)
    assert RemoteConfigProvider().read("id", props).outs == props


def test_only_a_changed_check_script_is_recorded_without_a_push(monkeypatch: pytest.MonkeyPatch,
                                                                props: dict[str, Any]) -> None:
    pushed: list[dict[str, Any]] = []
    monkeypatch.setattr(remote_config, "_apply", pushed.append)
    provider = RemoteConfigProvider()
    assert provider.update("id", {**props, "checkScript": ""}, props).outs == props
    assert not pushed, "a new check script alone pushed to the hub"
    drifted = {**props, "upScript": f"{DRIFT_MARK} x\n"}
    assert provider.update("id", drifted, props).outs == props and pushed == [props]


def test_a_new_hub_vm_gets_its_side_pushed_again_in_place(props: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's domain made anew (replaced, or made again after the host lost it) holds none of
    the pushed files: its new ID updates the hub side, which pushes it again; no replace, whose delete
    would run the down script on a hub that never had the up script's work."""
    provider = RemoteConfigProvider()
    old, new = {**props, "instance": "uuid-1"}, {**props, "instance": "uuid-2"}
    assert not provider.diff("id", old, old).changes
    result = provider.diff("id", old, new)
    assert result.changes and not result.replaces
    pushed = []
    monkeypatch.setattr(remote_config, "_apply", pushed.append)
    provider.update("id", old, new)
    assert pushed == [new]
