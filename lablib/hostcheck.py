"""Before anything is created: can the machine running Pulumi log in to every qemu+ssh host the
way the libvirt provider will? One clear error naming the host, instead of a half-built lab.

The login is lablib.hostssh's, a mirror of terraform-provider-libvirt 0.8.1's SSH client. Not
mirrored: ~/.ssh/config (IdentityFile, UserKnownHostsFile, HostName, ProxyJump), and the
forwarding to libvirtd's socket, which paramiko cannot open (the host checklist in docs/several-hosts.md
covers it).
"""
from __future__ import annotations

import socket

import paramiko

from lablib.errors import ConfigError
from lablib.hosts import HOSTS, Host
from lablib.hostssh import SSH_PORT, HostLogin, is_remote


def _fail(host: Host, why: str) -> ConfigError:
    return ConfigError(HOSTS, host.name, f"host {host.name} ({host.uri}) {why}; nothing was created")


def check_login(host: Host, timeout: float = 5.0) -> None:
    """Log in to a qemu+ssh host as the provider would; raise ConfigError naming it otherwise."""
    if not is_remote(host.uri):
        return
    login = HostLogin.of(host.uri)
    try:
        login.connect(timeout).close()
    except paramiko.BadHostKeyException:
        raise _fail(host, "answers with a host key other than the one in its known hosts file") from None
    except paramiko.SSHException as error:  # unknown host key, failed authentication, protocol errors
        raise _fail(host, f"refuses the SSH login: {error}") from None
    except (OSError, socket.timeout) as error:
        if getattr(error, "filename", None) == login.known_hosts:
            raise _fail(host, f"cannot be verified: known hosts file {login.known_hosts}: {error.strerror}") from None
        raise _fail(host, f"is not reachable on port {SSH_PORT}: {error}") from None


def check_logins(hosts: tuple[Host, ...], timeout: float = 5.0) -> None:
    """Every host in turn: the first that fails is the error."""
    for host in hosts:
        check_login(host, timeout)
