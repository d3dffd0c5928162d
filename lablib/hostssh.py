"""SSH to a libvirt host the way the libvirt provider does, and through it to the lab's VMs.

A host of lab:hosts reached over qemu+ssh is also the way in to its sites'
management network, which is isolated on that host: the hub push and the
lab's commands log in to the host with what its URI says and open a TCP
channel from there to the VM (an SSH jump host), so nothing but SSH to the
hosts is needed from the machine running Pulumi.

It mirrors terraform-provider-libvirt 0.8.1's SSH client (libvirt/uri/ssh.go):
port 22, the URI's user, keyfile= (else ~/.ssh/id_ed25519, id_ecdsa, id_rsa),
the agent unless sshauth= leaves it out, and knownhosts= (else
~/.ssh/known_hosts) unless no_verify or known_hosts_verify=ignore.
"""
from __future__ import annotations

import logging
import os
import shlex
import urllib.parse
from dataclasses import dataclass

import paramiko

SSH_PORT = 22
# paramiko logs each refused channel while a VM boots ("Secsh channel 0 open FAILED"); the callers
# retry and report what matters themselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def is_remote(uri: str) -> bool:
    """A qemu+ssh URI: the host is reached over SSH (qemu:///system is this machine)."""
    return uri.startswith("qemu+ssh://")


@dataclass(frozen=True)
class HostLogin:
    """What a checked qemu+ssh URI (lablib.hosts.check_uri) says about logging in to its host."""

    address: str
    user: str
    keys: tuple[str, ...]
    agent: bool
    known_hosts: str | None  # None: any host key is accepted (no_verify, known_hosts_verify=ignore)

    @classmethod
    def of(cls, uri: str) -> HostLogin:
        url = urllib.parse.urlsplit(uri)
        params = {key: values[-1] for key, values in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        methods = params.get("sshauth", "agent,privkey").split(",")
        keys = [params["keyfile"]] if "keyfile" in params else [os.path.expanduser(k) for k in DEFAULT_KEYS]
        ignore = "no_verify" in params or params.get("known_hosts_verify") == "ignore"
        return cls(url.hostname or "", url.username or "",
                   tuple(k for k in keys if os.path.isfile(k)) if "privkey" in methods else (),
                   "agent" in methods,
                   None if ignore else os.path.expanduser(params.get("knownhosts", DEFAULT_KNOWN_HOSTS)))

    def connect(self, timeout: float = 10.0) -> paramiko.SSHClient:
        """A logged-in client; paramiko's exceptions (and OSError for the known hosts file) as they come."""
        client = paramiko.SSHClient()
        if self.known_hosts is None:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            client.load_host_keys(self.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(self.address, SSH_PORT, username=self.user, key_filename=list(self.keys) or None,
                           allow_agent=self.agent, look_for_keys=False, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, channel_timeout=timeout)
        except BaseException:
            client.close()
            raise
        client.get_transport().set_keepalive(5)  # type: ignore[union-attr]
        return client


def channel_to(jump: paramiko.SSHClient, address: str, port: int = SSH_PORT,
               timeout: float = 10.0) -> paramiko.Channel:
    """A TCP channel from the jump host to address:port (sshd's direct-tcpip, AllowTcpForwarding)."""
    transport = jump.get_transport()
    assert transport is not None
    return transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)


def run(client: paramiko.SSHClient, command: list[str], timeout: float = 60, stdin: str = "") -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of command on a host; bounded like every other wait."""
    channel_in, stdout, stderr = client.exec_command(shlex.join(command), timeout=timeout)
    channel_in.write(stdin)
    channel_in.channel.shutdown_write()
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    if not stdout.channel.status_event.wait(timeout):
        raise TimeoutError(f"`{shlex.join(command)}` gave no exit status within {timeout:.0f} s")
    return stdout.channel.exit_status, out, err
