"""Before anything is created: can the machine running Pulumi log in to every qemu+ssh host the
way the libvirt provider will? One clear error naming the host, instead of a half-built lab.

It mirrors terraform-provider-libvirt 0.8.1's SSH client (libvirt/uri/ssh.go) with paramiko:
port 22, the URI's user, keyfile= (else ~/.ssh/id_ed25519, id_ecdsa, id_rsa), the agent unless
sshauth= leaves it out, and knownhosts= (else ~/.ssh/known_hosts) unless no_verify or
known_hosts_verify=ignore. Not mirrored: ~/.ssh/config (IdentityFile, UserKnownHostsFile,
HostName, ProxyJump), and the forwarding to libvirtd's socket, which paramiko cannot open
(the host checklist in the README covers it).
"""
from __future__ import annotations

import os
import socket
import urllib.parse

import paramiko

from lablib.errors import ConfigError
from lablib.hosts import HOSTS, Host

SSH_PORT = 22
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def _fail(host: Host, why: str) -> ConfigError:
    return ConfigError(HOSTS, host.name, f"host {host.name} ({host.uri}) {why}; nothing was created")


def check_login(host: Host, timeout: float = 5.0) -> None:
    """Log in to a qemu+ssh host as the provider would; raise ConfigError naming it otherwise."""
    if not host.uri.startswith("qemu+ssh://"):
        return
    url = urllib.parse.urlsplit(host.uri)
    params = {key: values[-1] for key, values in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
    methods = params.get("sshauth", "agent,privkey").split(",")
    keys = [params["keyfile"]] if "keyfile" in params else [os.path.expanduser(k) for k in DEFAULT_KEYS]
    client = paramiko.SSHClient()
    if "no_verify" in params or params.get("known_hosts_verify") == "ignore":
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        known = os.path.expanduser(params.get("knownhosts", DEFAULT_KNOWN_HOSTS))
        try:
            client.load_host_keys(known)
        except OSError as error:
            raise _fail(host, f"cannot be verified: known hosts file {known}: {error.strerror}") from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(url.hostname or "", SSH_PORT, username=url.username,
                       key_filename=[k for k in keys if os.path.isfile(k)] if "privkey" in methods else None,
                       allow_agent="agent" in methods, look_for_keys=False, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout)
    except paramiko.BadHostKeyException:
        raise _fail(host, "answers with a host key other than the one in its known hosts file") from None
    except paramiko.SSHException as error:  # unknown host key, failed authentication, protocol errors
        raise _fail(host, f"refuses the SSH login: {error}") from None
    except (OSError, socket.timeout) as error:
        raise _fail(host, f"is not reachable on port {SSH_PORT}: {error}") from None
    finally:
        client.close()


def check_logins(hosts: tuple[Host, ...], timeout: float = 5.0) -> None:
    """Every host in turn: the first that fails is the error."""
    for host in hosts:
        check_login(host, timeout)
