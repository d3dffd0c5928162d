"""RemoteConfig: files and a script pushed to a running VM over SSH (paramiko).

Cloud-init runs once per instance, so the hub cannot learn about a spoke
added later from its own payload. Each spoke's hub-side conn, secrets and GRE
port are therefore a resource of their own: created, updated and deleted in
place on the running hub, which is never replaced or rebooted for it. `pulumi refresh`
reads them back: a pushed file that differs on the VM, or a failing check script, shows as
drift that the next update pushes again.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import shlex
import sys
import time
from typing import Any

import paramiko
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from lablib.hostssh import HostLogin, channel_to
from lablib.payload import installed_forms, payload_wait_command
from lablib.sshkeys import load_private_key

CONNECT_RETRY_SECONDS = 2  # a booting VM's refused or unrouted connect costs it nothing; its push waits less
SSH_PORT = 22
DELETE_TIMEOUT_SECONDS = 60
COMMAND_TIMEOUT_SECONDS = 120
READ_TIMEOUT_SECONDS = 15  # a refresh must not wait long for a VM that is down or rebooting
PUSH_END = "LAB_PUSH_END"  # ends each file's here-document: no base64 line can be it
DRIFT_MARK = "# drifted on the VM, pushed again by the next update:"


class RemoteError(RuntimeError):
    """A remote command failed; carries what it printed."""


class _Session:
    """The SSH client of the VM, and of the jump host it is reached through (if any)."""

    def __init__(self, client: paramiko.SSHClient, jump: paramiko.SSHClient | None = None) -> None:
        self.client, self.jump = client, jump

    def close(self) -> None:
        self.client.close()
        if self.jump is not None:
            self.jump.close()


def _jump(props: dict[str, Any]) -> paramiko.SSHClient | None:
    """The hub's host, logged in to as its URI says, when the hub runs on a remote host."""
    if not props.get("jumpUri"):
        return None
    try:
        return HostLogin.of(props["jumpUri"]).connect()
    except (OSError, paramiko.SSHException) as error:
        raise RemoteError(f"could not log in to the hub's host ({props['jumpUri']}): {error}") from error


def _connect(props: dict[str, Any], timeout: float) -> _Session:
    """Connect, retrying connection errors until timeout (the VM may still be booting);
    a refused key is final, reported at once."""
    deadline = time.monotonic() + timeout
    key = load_private_key(props["privateKey"])
    jump = _jump(props)
    while True:
        client = paramiko.SSHClient()
        # Lab VMs get fresh host keys on every create, on a network private to this run.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            sock = channel_to(jump, props["host"]) if jump is not None else None
            client.connect(props["host"], port=SSH_PORT, username=props["user"], pkey=key, timeout=10,
                           banner_timeout=30, auth_timeout=30, channel_timeout=30, allow_agent=False,
                           look_for_keys=False, sock=sock)
            client.get_transport().set_keepalive(5)  # type: ignore[union-attr]
            return _Session(client, jump)
        except paramiko.AuthenticationException as error:
            # sshd answers only once cloud-init (cloud-init.service) or lab-seed (its local step) has
            # installed the key: both run before sshd.service, so a refusal now stays a refusal.
            _Session(client, jump).close()
            raise RemoteError(f"{props['user']}@{props['host']} refused the SSH key ({error}): "
                              "lab:sshPrivateKey must be the private half of lab:sshPublicKey") from error
        except (OSError, paramiko.SSHException) as error:
            client.close()
            # No route to the VM's network at all: the lab's management network is gone (its
            # namespace stopped, the host rebooted), not a VM still booting on it.
            gone = getattr(error, "errno", None) == errno.ENETUNREACH
            if gone or time.monotonic() > deadline:
                if jump is not None:
                    jump.close()
                within = "" if gone else f" within {timeout:.0f} s"
                raise RemoteError(f"could not reach {props['user']}@{props['host']} over SSH{within}: {error}") from error
            time.sleep(CONNECT_RETRY_SECONDS)
            transport = jump.get_transport() if jump is not None else None
            if jump is not None and (transport is None or not transport.is_active()):
                jump.close()
                jump = _jump(props)  # the jump host's connection broke while the VM booted


def _execute(client: paramiko.SSHClient, command: str, stdin: str = "",
             timeout: float = COMMAND_TIMEOUT_SECONDS) -> tuple[int, str, str]:
    """Run command, feeding stdin: (exit status, stdout, stderr). RemoteError when it cannot run or
    gives no exit status within timeout (a hung command must fail the update, not hang it)."""
    try:
        channel_in, channel_out, channel_err = client.exec_command(command, timeout=timeout)
        channel_in.write(stdin)
        channel_in.channel.shutdown_write()
        out = channel_out.read().decode(errors="replace")
        err = channel_err.read().decode(errors="replace")
        finished = channel_out.channel.status_event.wait(timeout)
    except OSError as error:  # socket.timeout included
        raise RemoteError(f"`{command}` failed: {error!r}") from error
    if not finished:
        raise RemoteError(f"`{command}` gave no exit status within {timeout:.0f} s")
    return channel_out.channel.exit_status, out, err


def _run(client: paramiko.SSHClient, command: str, stdin: str = "", timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run command, feeding stdin; raise RemoteError with its output when it fails."""
    status, out, err = _execute(client, command, stdin, timeout)
    if status != 0:
        raise RemoteError(f"`{command}` exited {status}: {err.strip() or out.strip()}")
    return out


def push_script(files: list[dict[str, str]], up_script: str, wait_command: str) -> str:
    """The whole push as one script for one `sudo sh -s`: an exec costs the VM a login shell and sudo
    (0.3-0.6 s of its CPU under emulation, docs/performance.md), and a push made one per file
    besides the wait and the up script. The wait for the VM's first-boot payload (the ipsec, OVS
    bridge and tunnel interface it needs) comes first; then each file from a base64 here-document
    (exact bytes; content never on a command line), written beside its path and renamed onto it (the
    hub's pushes run at once, and each writes lab-updown); then the up script."""
    failed = "the VM's first-boot payload is not done (lab-seed's status, or cloud-init's)"
    lines = ["set -eu", f"{wait_command} </dev/null || {{ echo {shlex.quote(failed)} >&2; exit 1; }}"]
    for file in files:
        # -D: the PKI's files go to a directory of their own (lablib.names.PKI_DIR).
        path = shlex.quote(file["path"])
        lines.append(f"base64 -d <<'{PUSH_END}' | install -D -o root -g root -m {shlex.quote(file['mode'])} "
                     f"/dev/stdin {path}.push-$$")
        lines.append(base64.encodebytes(file["content"].encode()).decode() + PUSH_END)
        lines.append(f"mv -f {path}.push-$$ {path}")
    return "\n".join(lines) + "\n" + up_script


def _apply(props: dict[str, Any]) -> None:
    ready = float(props["readyTimeout"])
    session = _connect(props, ready)
    try:
        script = push_script(props["files"], props["upScript"], payload_wait_command(ready))
        _run(session.client, "sudo sh -s", stdin=script, timeout=ready + COMMAND_TIMEOUT_SECONDS)
    finally:
        session.close()


def digest_command(files: list[dict[str, str]]) -> str:
    """sha256sum of each pushed file, on the VM: only digests come back, never a secret's content."""
    return "sudo sha256sum -- " + " ".join(shlex.quote(file["path"]) for file in files)


def file_differences(files: list[dict[str, str]], listing: str) -> list[str]:
    """The pushed files that the VM's sha256sum listing shows missing or changed (by path only)."""
    found = {}
    for line in listing.splitlines():
        digest, _, path = line.partition("  ")
        found[path] = digest
    differences = []
    for file in files:
        accepted = {hashlib.sha256(form.encode()).hexdigest() for form in installed_forms(file["path"], file["content"])}
        if file["path"] not in found:
            differences.append(f"{file['path']} missing")
        elif found[file["path"]] not in accepted:
            differences.append(f"{file['path']} is not what was pushed")
    return differences


def drifted_outs(props: dict[str, Any], differences: list[str]) -> dict[str, Any]:
    """The outs a refresh records: props as they were when nothing drifted; else with upScript
    replaced by a note of what drifted, so the next diff (refreshed outs against the program's
    inputs) sees upScript change and the update pushes everything again. files and privateKey are
    left as they were: they stay secret."""
    if not differences:
        return props
    return {**props, "upScript": f"{DRIFT_MARK} {'; '.join(differences)}\n"}


def _differences(client: paramiko.SSHClient, props: dict[str, Any]) -> list[str]:
    """What on the VM is no longer as the resource pushed it: its files, then its check script's findings."""
    _, listing, _ = _execute(client, digest_command(props["files"]), timeout=READ_TIMEOUT_SECONDS)
    differences = file_differences(props["files"], listing)
    if props.get("checkScript"):
        status, out, err = _execute(client, "sudo sh -s", stdin=props["checkScript"], timeout=READ_TIMEOUT_SECONDS)
        if status != 0:
            differences += out.strip().splitlines() or [f"check script exited {status}: {err.strip()}"]
    return differences


def _warn(props: dict[str, Any], message: str) -> None:
    # No engine runs in the dynamic provider's process: pulumi.log would only print too.
    print(f"warning: {props['name']}: {message}", file=sys.stderr)


# The props that say which things on which VM a resource stands for: the down script names every
# file, port and conn it removes, so when it changes the old one must run before the new push.
REPLACING_KEYS = ("host", "name", "downScript")
# How a refresh checks the VM: a change of it alone is recorded, nothing is pushed.
RECORD_ONLY_KEYS = ("checkScript",)
DIFF_KEYS = ("host", "user", "name", "instance", "files", "upScript", "downScript", "jumpUri", "checkScript")


def changed_keys(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    return [key for key in DIFF_KEYS if olds.get(key, "") != news.get(key, "")]


class RemoteConfigProvider(ResourceProvider):
    """Pushes files and runs scripts; a change of what it stands for (REPLACING_KEYS) replaces,
    anything else (file contents, up script, login) updates in place; read finds drift on the VM."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        _apply(props)
        return CreateResult(id_=f"{props['host']}:{props['name']}", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_keys(olds, news)
        replaces = [key for key in REPLACING_KEYS if key in changed]
        return DiffResult(changes=bool(changed), replaces=replaces)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        changed = changed_keys(olds, news)
        if not changed or not set(changed) <= set(RECORD_ONLY_KEYS):
            _apply(news)
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """props, or props marked drifted (drifted_outs); a VM that cannot be reached (down,
        rebooting, gone) keeps them as they were: a refresh never fails or forgets for it."""
        try:
            session = _connect(props, READ_TIMEOUT_SECONDS)
        except RemoteError as error:
            _warn(props, f"state kept unread, {error}")
            return ReadResult(id_, props)
        try:
            differences = _differences(session.client, props)
        except (RemoteError, paramiko.SSHException) as error:
            _warn(props, f"state kept unread, {error}")
            return ReadResult(id_, props)
        finally:
            session.close()
        return ReadResult(id_, drifted_outs(props, differences))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        try:
            session = _connect(props, DELETE_TIMEOUT_SECONDS)
        except RemoteError as error:
            # The VM itself is gone or going: nothing is left to clean on it.
            _warn(props, f"skipped remote cleanup, {error}")
            return
        try:
            _run(session.client, "sudo sh -s", stdin=props["downScript"])
        finally:
            session.close()


class RemoteConfig(pulumi.dynamic.Resource):
    """Files + up/down scripts on one VM, applied over SSH as user with sudo; a check script (run
    by a refresh, read-only) says whether the VM still holds what the up script did."""

    def __init__(
        self,
        name: str,
        *,
        host: pulumi.Input[str],
        user: pulumi.Input[str],
        private_key: pulumi.Input[str],
        files: pulumi.Input[list[dict[str, str]]],
        up_script: pulumi.Input[str],
        down_script: pulumi.Input[str],
        ready_timeout: int,
        check_script: pulumi.Input[str] = "",
        jump_uri: str = "",
        instance: pulumi.Input[str] = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": name, "host": host, "user": user, "privateKey": private_key, "files": files,
            "upScript": up_script, "downScript": down_script, "checkScript": check_script,
            "readyTimeout": ready_timeout,
            # The VM's own ID (its libvirt domain's): a VM made anew at the same address (its
            # domain replaced, or made again after the host lost it) holds none of the pushed files.
            "instance": instance,
        }
        if jump_uri:  # only then: the props (and so the state) of a one-host lab stay as they were
            props["jumpUri"] = jump_uri
        # Old and new stand for the same files, port and conn on the VM: created first, the new one
        # would be undone by the old one's down script. An option, not the diff's answer, because
        # `pulumi up --replace` never asks the provider's diff.
        own = pulumi.ResourceOptions(additional_secret_outputs=["privateKey", "files"], delete_before_replace=True)
        super().__init__(RemoteConfigProvider(), name, props, pulumi.ResourceOptions.merge(opts, own))
