"""The hub push gives up at once when sshd refuses the key, and retries only while nothing answers.

A real paramiko SSH server on 127.0.0.1, in this process, stands in for the hub's sshd.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator

import paramiko
import pytest

from harness import ssh_private_key
from providers import remote_config
from providers.remote_config import RemoteError, _connect

READY_TIMEOUT = 900  # what RemoteConfig waits for a booting VM


class RefusingServer(paramiko.ServerInterface):
    """Offers publickey auth and refuses every key, as sshd does for a key not in authorized_keys."""

    def __init__(self) -> None:
        self.offered = 0

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.offered += 1
        return paramiko.AUTH_FAILED


@pytest.fixture
def refusing_sshd() -> Iterator[tuple[int, RefusingServer]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = RefusingServer()
    host = paramiko.RSAKey.generate(2048)
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(host)
            transport.start_server(server=server)
            transports.append(transport)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], server
    listener.close()
    for transport in transports:
        transport.close()


def props(port: int, key: str | None = None) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": port, "user": "lab", "privateKey": key or ssh_private_key()}


def test_refused_key_is_reported_at_once(refusing_sshd: tuple[int, RefusingServer],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    port, server = refusing_sshd
    monkeypatch.setattr(remote_config, "SSH_PORT", port)
    started = time.monotonic()
    with pytest.raises(RemoteError, match="refused the SSH key.*private half of lab:sshPublicKey"):
        _connect(props(port), READY_TIMEOUT)
    assert time.monotonic() - started < remote_config.CONNECT_RETRY_SECONDS
    assert server.offered == 1


def test_nothing_listening_is_retried_until_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: connection refused, as while the VM boots
    monkeypatch.setattr(remote_config, "SSH_PORT", port)
    monkeypatch.setattr(remote_config, "CONNECT_RETRY_SECONDS", 0.05)
    attempts = []
    real_client = paramiko.SSHClient

    def counting_client() -> paramiko.SSHClient:
        attempts.append(1)
        return real_client()

    monkeypatch.setattr(remote_config.paramiko, "SSHClient", counting_client)
    with pytest.raises(RemoteError, match="could not reach lab@127.0.0.1 over SSH within 1 s"):
        _connect(props(port), 0.6)
    assert len(attempts) > 3


def test_no_route_to_the_network_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENETUNREACH: the lab's management network itself is gone (namespace stopped, host rebooted), so
    a delete or refresh must not wait its whole timeout for a VM that cannot come back on it."""
    attempts = []

    class NoRoute(paramiko.SSHClient):
        def connect(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            attempts.append(1)
            raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(remote_config.paramiko, "SSHClient", NoRoute)
    started = time.monotonic()
    with pytest.raises(RemoteError, match=r"could not reach lab@127.0.0.1 over SSH: \[Errno 101\] Network is unreachable"):
        _connect(props(22), READY_TIMEOUT)
    assert time.monotonic() - started < remote_config.CONNECT_RETRY_SECONDS and attempts == [1]
