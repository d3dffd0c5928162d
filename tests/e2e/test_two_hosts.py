"""Two simulated libvirt hosts (scripts/hosts.sh) reached over qemu+ssh: virsh, and the real
pulumi-libvirt provider creating a pool and an uploaded volume on host b.

Needs root (namespaces): anything missing fails here, nothing is skipped. The
hosts' daemons use private /run/libvirt and pid files, so they never meet the lab's
libvirtd; one test starts a (diskless) VM, so the whole file runs under the VM lock
like the rest of `make test`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from pulumi import automation as auto

from lablib import names
from labctl.stack import pulumi_env
from tests.e2e.simhosts import hosts, running_hosts

ROOT = names.PROJECT_DIR
POOL_PATH = "/var/lib/libvirt/hosts-test"
PROGRAM = textwrap.dedent('''\
    """One pool and one volume uploaded from a local file, on the host of lab:uri."""
    import pulumi
    import pulumi_libvirt as libvirt

    config = pulumi.Config()
    host = libvirt.Provider("host", uri=config.require("uri"))
    on_host = pulumi.ResourceOptions(provider=host)
    pool = libvirt.Pool("pool", name="hosts-test", type="dir", path=config.require("poolPath"), opts=on_host)
    volume = libvirt.Volume("upload", name="upload.raw", pool=pool.name, source=config.require("source"),
                            format="raw", opts=on_host)
    pulumi.export("volume", volume.id)
''')


CAPACITY_PROGRAM = textwrap.dedent('''\
    """One domain on host a, three on host b: only b is over a budget of two VMs' memory."""
    import pulumi
    import pulumi_libvirt as libvirt

    config = pulumi.Config()
    for host, count in (("a", 1), ("b", 3)):
        provider = libvirt.Provider(f"host-{host}", uri=config.require(f"uri{host}"))
        for index in range(count):
            libvirt.Domain(f"{host}{index}", memory=512, vcpu=1, type="qemu",
                           opts=pulumi.ResourceOptions(provider=provider))
''')


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    with running_hosts() as found:
        yield found


def virsh(env: dict[str, str], host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """virsh on the controller, over qemu+ssh to host a or b."""
    return subprocess.run(["ip", "netns", "exec", env["HOSTS_CONTROLLER_NS"], "virsh", "-q", "-c",
                           env[f"HOST_{host.upper()}_VIRSH_URI"], *args], text=True, capture_output=True, timeout=60)


def pools(env: dict[str, str], host: str) -> list[str]:
    result = virsh(env, host, "pool-list", "--all", "--name")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_each_host_is_its_own_libvirtd(env: dict[str, str]) -> None:
    for host, other in (("a", "b"), ("b", "a")):
        assert virsh(env, host, "list", "--all").returncode == 0
        defined = virsh(env, host, "pool-define-as", f"scratch-{host}", "dir", "--target", f"/var/lib/libvirt/s-{host}")
        assert defined.returncode == 0, defined.stderr
        assert f"scratch-{host}" in pools(env, host) and f"scratch-{host}" not in pools(env, other)
        assert virsh(env, host, "pool-undefine", f"scratch-{host}").returncode == 0
        assert f"scratch-{host}" not in pools(env, host)


PROBE = """<domain type='qemu'>
  <name>hosts-probe</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><console type='pty'/></devices>
</domain>
"""


def test_a_vm_starts_inside_host_b(env: dict[str, str], tmp_path: Path) -> None:
    """A diskless domain (it sits in the firmware): qemu runs in host b's namespaces, not the lab's."""
    (tmp_path / "probe.xml").write_text(PROBE)
    created = virsh(env, "b", "create", str(tmp_path / "probe.xml"))
    assert created.returncode == 0, created.stderr
    try:
        assert virsh(env, "b", "domstate", "hosts-probe").stdout.strip() == "running"
        assert "hosts-probe" not in virsh(env, "a", "list", "--name").stdout
        pids = subprocess.run(["ip", "netns", "pids", "gre-host-b"], capture_output=True, text=True).stdout.split()
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in pids]
        assert any(command.endswith(b"qemu-system-x86_64") for command in commands), commands
    finally:
        assert virsh(env, "b", "destroy", "hosts-probe").returncode == 0
    assert "hosts-probe" not in virsh(env, "b", "list", "--all", "--name").stdout


def test_hosts_see_neither_the_cache_nor_the_labs_libvirt(env: dict[str, str]) -> None:
    for host in ("a", "b"):
        listing = hosts("exec", host, "ls", "-A", str(names.CACHE_DIR)).stdout
        assert listing == "", f"host {host} sees the controller's cache: {listing}"
        inode = hosts("exec", host, "stat", "-c", "%i", "/run/libvirt").stdout
        assert inode != str(os.stat("/run/libvirt").st_ino) + "\n"


def run_project(tmp: Path, env: dict[str, str], program: str = PROGRAM) -> tuple[auto.LocalWorkspaceOptions, Path]:
    """A throwaway project whose pulumi runs in the controller's namespace, with its own backend."""
    (tmp / "project").mkdir()
    (tmp / "project" / "Pulumi.yaml").write_text(
        f"name: hoststest\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / 'venv'}\n")
    (tmp / "project" / "__main__.py").write_text(program)
    (tmp / "bin").mkdir()
    wrapper = tmp / "bin" / "pulumi"
    real = names.CACHE_DIR / "toolchain" / "bin" / "pulumi"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {env["HOSTS_CONTROLLER_NS"]} {real} "$@"\n')
    wrapper.chmod(0o755)
    (tmp / "state").mkdir()
    (tmp / "home").mkdir()
    variables = {k: v for k, v in pulumi_env().items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}
    variables.update(PULUMI_BACKEND_URL=f"file://{tmp / 'state'}", PULUMI_CONFIG_PASSPHRASE="hosts-test",
                     HOME=str(tmp / "home"))  # the provider reads $HOME/.ssh/config: a clean one per run
    options = auto.LocalWorkspaceOptions(
        work_dir=str(tmp / "project"), pulumi_home=variables["PULUMI_HOME"], env_vars=variables,
        pulumi_command=auto.PulumiCommand(root=str(tmp), skip_version_check=True))
    return options, tmp / "home"


def stack_on(options: auto.LocalWorkspaceOptions, name: str, uri: str, source: Path) -> auto.Stack:
    stack = auto.create_or_select_stack(name, work_dir=options.work_dir, opts=options)
    stack.set_all_config({"hoststest:uri": auto.ConfigValue(uri), "hoststest:poolPath": auto.ConfigValue(POOL_PATH),
                          "hoststest:source": auto.ConfigValue(str(source))})
    return stack


@pytest.fixture
def upload() -> Iterator[Path]:
    """A file only the controller has: under the cache, which the hosts cannot see."""
    directory = Path(tempfile.mkdtemp(prefix="hosts-test-", dir=names.CACHE_DIR))
    try:
        source = directory / "upload.raw"
        source.write_bytes(os.urandom(1 << 20))
        yield source
    finally:
        shutil.rmtree(directory)


@pytest.mark.timeout(900)
def test_provider_creates_and_deletes_a_pool_and_uploaded_volume_on_host_b(
        env: dict[str, str], upload: Path, tmp_path: Path) -> None:
    options, _ = run_project(tmp_path, env)
    stack = stack_on(options, "b", env["HOST_B_URI"], upload)
    assert hosts("exec", "b", "test", "-e", str(upload), check=False).returncode != 0
    try:
        stack.up(on_output=print)
        assert "hosts-test" in pools(env, "b") and "hosts-test" not in pools(env, "a")
        volume = f"{POOL_PATH}/upload.raw"
        copied = hosts("exec", "b", "sha256sum", volume).stdout.split()[0]
        assert copied == hashlib.sha256(upload.read_bytes()).hexdigest()
        # Nothing to change on a second run (preview's event stream is a TCP socket in the test's own
        # namespace, which pulumi in the controller's cannot reach; up reads the summary from history).
        assert stack.up().summary.resource_changes == {"same": 4}  # stack, provider, pool, volume
    finally:
        stack.destroy(on_output=print)
    assert "hosts-test" not in pools(env, "b")
    assert hosts("exec", "b", "test", "-e", f"{POOL_PATH}/upload.raw", check=False).returncode != 0


def failed_up(options: auto.LocalWorkspaceOptions, name: str, uri: str, source: Path) -> str:
    """The error pulumi up ends with for uri; the stack is removed again."""
    stack = stack_on(options, name, uri, source)
    try:
        with pytest.raises(auto.CommandError) as caught:
            stack.up()
        print(f"{name}: {str(caught.value).split('Diagnostics:')[-1][:1500]}")
        return str(caught.value)
    finally:
        stack.destroy()
        stack.workspace.remove_stack(name)


@pytest.mark.timeout(900)
def test_provider_facts_port_user_and_known_hosts(env: dict[str, str], upload: Path, tmp_path: Path) -> None:
    """terraform-provider-libvirt 0.8.1 as lablib/hosts.py describes it, on a real sshd."""
    options, home = run_project(tmp_path, env)
    state = env["HOSTS_STATE"]
    uplink, keys = env["HOST_B_UPLINK"], f"keyfile={state}/id_ed25519&knownhosts={state}/known_hosts"
    # A port, even sshd's own 22, stays in the host name: "host:22" is looked up as a name.
    error = failed_up(options, "port", f"qemu+ssh://root@{uplink}:22/system?{keys}", upload)
    assert f"lookup {uplink}:22: no such host" in error, error[-3000:]
    # User from ~/.ssh/config is not used: without a user in the URI, login fails.
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text(f"Host {uplink}\n  User root\n")
    error = failed_up(options, "nouser", f"qemu+ssh://{uplink}/system?{keys}", upload)
    assert "unable to authenticate" in error, error[-3000:]
    # An unknown host key is refused; no_verify=1 accepts any.
    empty = home / "known_hosts"
    empty.write_text("")
    error = failed_up(options, "unknown", f"qemu+ssh://root@{uplink}/system?keyfile={state}/id_ed25519"
                                          f"&knownhosts={empty}", upload)
    assert "knownhosts: key is unknown" in error, error[-3000:]


@pytest.mark.timeout(600)
def test_capacity_policy_judges_each_host_under_the_real_engine(env: dict[str, str], tmp_path: Path) -> None:
    """pulumi preview with the pack: the engine hands each domain's explicit provider to the pack.
    (The CLI directly: the Automation API's preview streams events over TCP, unreachable across namespaces.)"""
    options, _ = run_project(tmp_path, env, CAPACITY_PROGRAM)
    stack = auto.create_or_select_stack("capacity", work_dir=options.work_dir, opts=options)
    stack.set_all_config({"hoststest:uria": auto.ConfigValue(env["HOST_A_URI"]),
                          "hoststest:urib": auto.ConfigValue(env["HOST_B_URI"])})
    pack_config = tmp_path / "pack.json"
    pack_config.write_text('{"capacity-budget": {"maxMemoryMib": 1024}}')
    result = subprocess.run(
        [str(tmp_path / "bin" / "pulumi"), "preview", "--non-interactive", "--stack", "capacity",
         "--policy-pack", str(ROOT / "policy"), "--policy-pack-config", str(pack_config)],
        cwd=options.work_dir, env={**os.environ, **(options.env_vars or {})}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    print(result.stdout[-4000:])
    capacity = [line.strip() for line in result.stdout.splitlines() if "over the budget" in line]
    assert capacity == [f"host {env['HOST_B_URI']}'s 3 VMs need 1536 MiB of memory, over the budget of 1024 per "
                        "host: lower lab:spokes or lab:memoryMib, spread spokes over more lab:hosts, or raise "
                        "maxMemoryMib in the pack config."], result.stdout[-4000:]


LOGIN = """
import ipaddress, sys
from lablib.errors import ConfigError
from lablib.hostcheck import check_login
from lablib.hosts import Host
try:
    check_login(Host(sys.argv[1], sys.argv[2], ipaddress.IPv4Address(sys.argv[3])), timeout=3)
except ConfigError as error:
    print(error)
    sys.exit(1)
"""


def login(env: dict[str, str], name: str, uri: str) -> str:
    """lablib.hostcheck's verdict on uri, from the controller's namespace ("" when it logs in)."""
    result = subprocess.run(["ip", "netns", "exec", env["HOSTS_CONTROLLER_NS"], str(ROOT / "venv" / "bin" / "python"),
                             "-c", LOGIN, name, uri, "172.31.0.2"], cwd=ROOT, text=True, capture_output=True,
                            timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip()


def test_login_check_passes_both_hosts_and_names_the_one_that_fails(env: dict[str, str], tmp_path: Path) -> None:
    assert login(env, "a", env["HOST_A_URI"]) == login(env, "b", env["HOST_B_URI"]) == ""
    state, uplink = env["HOSTS_STATE"], env["HOST_B_UPLINK"]
    keys = f"keyfile={state}/id_ed25519&knownhosts={state}/known_hosts"
    (tmp_path / "empty").write_text("")
    cases = {
        f"qemu+ssh://root@{uplink}/system?keyfile={state}/id_ed25519&knownhosts={tmp_path / 'empty'}":
            f"refuses the SSH login: Server '{uplink}' not found in known_hosts",
        f"qemu+ssh://nobody@{uplink}/system?{keys}": "refuses the SSH login: Authentication failed",
        f"qemu+ssh://root@172.31.0.9/system?{keys}": "is not reachable on port 22",
    }
    for uri, why in cases.items():
        verdict = login(env, "b", uri)
        assert verdict.startswith("config lab:hosts = 'b' is invalid: host b (") and why in verdict, verdict
