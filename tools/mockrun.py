"""Run the Pulumi program under mocks and record what it declares (no engine, no VMs).

The fast tests, the policy tests and tools/bench_plan.py share this. The SDK
does not read Pulumi.yaml or stack files, so this does what the engine does:
defaults from Pulumi.yaml, values from stacks/Pulumi.<stack>.yaml.
"""
from __future__ import annotations

import asyncio
import atexit
import gc
import json
import runpy
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lablib.config import SECRET_KEYS
from lablib.names import PROJECT_DIR as ROOT

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the key that marks a secret input
TEST_MASTER_SECRET = "test-master-secret-0123456789abcdef"


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    provider: str = ""  # the explicit provider's reference (URN::id), "" for the default one
    delete_before_replace: bool = False  # the resource option, which the engine sees and Mocks are not shown


@dataclass
class Run:
    resources: list[Recorded]
    outputs: dict[str, Any] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)  # the RegisterResource and RegisterResourceOutputs requests

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Recorded:
        (match,) = [r for r in self.resources if r.name == name]
        return match


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Recorded] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), args.custom, args.provider or ""))
        state = dict(args.inputs)
        maker = _pki_maker(state)
        if maker is not None:  # the lab PKI: made for real (keys, certificates, CRL), as its provider would
            state = maker.create({k: v for k, v in state.items() if k != "__provider"}).outs
        if args.typ == "libvirt:index/pool:Pool":
            state.setdefault("name", args.inputs.get("name"))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def _pki_maker(inputs: dict[str, Any]) -> Any:
    """The providers/pki.py provider a dynamic resource's inputs are for (by a prop only it has), or None."""
    from providers import pki  # only the runs that make a PKI pay for importing it
    for prop, provider in (("commonName", pki.LabCaProvider), ("ikeId", pki.SiteCertProvider),
                           ("issued", pki.RevocationListProvider)):
        if prop in inputs and "__provider" in inputs:
            return provider()
    return None


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The mock monitor, also keeping the requests: what the engine would see (Mocks are not shown
    the options, delete_before_replace among them)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:  # the gRPC methods, named as they are
        self.requests.append(request)
        return super().RegisterResource(request)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.requests.append(request)
        return super().RegisterResourceOutputs(request)


@cache
def _project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


PROJECT = _project()["name"]


def project_config() -> dict[str, dict[str, Any]]:
    """The config keys Pulumi.yaml declares, with their types and defaults."""
    return _project()["config"]


def as_config_string(value: Any) -> str:
    """How the engine hands a typed value to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def load_stack(stack: str) -> dict[str, Any]:
    """The typed values of stacks/Pulumi.<stack>.yaml, without the project prefix."""
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return {key.split(":", 1)[1]: value for key, value in data["config"].items()}


@cache
def _ssh_key() -> ed25519.Ed25519PrivateKey:
    """A throw-away key pair, made once per process."""
    return ed25519.Ed25519PrivateKey.generate()


def ssh_private_key() -> str:
    return _ssh_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()


def ssh_public_key() -> str:
    """The public line of ssh_private_key(): the program checks that the two match."""
    line = _ssh_key().public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} test@lab"


@cache
def boot_files() -> Path:
    """A directory holding an image, kernel and initrd: the program checks that they exist."""
    directory = Path(tempfile.mkdtemp(prefix="lab-boot-files-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    for name in ("test.qcow2", "vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"")
    return directory


def mock_secrets() -> dict[str, str]:
    """Stand-ins for the secrets the program reads (never a real lab's)."""
    return {"masterSecret": TEST_MASTER_SECRET, "sshPrivateKey": ssh_private_key()}


def stack_values(overrides: dict[str, Any] | None = None, stack: str | None = None,
                 secrets: bool = True) -> dict[str, str]:
    """Defaults + a stack file + overrides + test secrets, as config strings."""
    values: dict[str, Any] = {k: v["default"] for k, v in project_config().items() if "default" in v}
    values.update({"image": str(boot_files() / "test.qcow2"), "sshPublicKey": ssh_public_key()})
    if stack:
        values.update(load_stack(stack))
        values["sshPublicKey"] = ssh_public_key()  # the stacks' line is a placeholder of no key
    if secrets:
        values.update(mock_secrets())
    values.update(overrides or {})
    return {key: as_config_string(value) for key, value in values.items() if value is not None}


def run_program(values: dict[str, str], stack: str = "test", preview: bool = False) -> Run:
    """Run __main__.py under fresh mocks; return the recorded resources and stack outputs."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.settings.reset_options()
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    secret_keys = [f"{PROJECT}:{key}" for key in SECRET_KEYS]
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in values.items()}, secret_keys=secret_keys)
    exports: dict[str, Any] = {}
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        original_export = pulumi.export
        pulumi.export = exports.__setitem__  # the Stack resource is not mocked: catch exports
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            pulumi.export = original_export
        return pulumi.Output.from_input(exports).apply(outputs.update)

    collecting = gc.isenabled()  # the program turns the collector off for its own process
    try:
        program()
    finally:
        if collecting:
            gc.enable()
    replaced_first = {(r.type, r.name) for r in monitor.requests if getattr(r, "deleteBeforeReplace", False)}
    for resource in mocks.resources:
        resource.delete_before_replace = (resource.typ, resource.name) in replaced_first
    return Run(mocks.resources, outputs, monitor.requests)


def timed_plan(values: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of run_program(values), the collector off throughout, as in a real run.

    The program's own process never collects (lablib/sdk_tuning.py); run_program turns the collector
    back on for the tests, and its first collection of the run's garbage would be timed with the plan
    (a fifth of it for 250 spokes). Here that collection comes after the timing.
    """
    gc.collect()
    gc.disable()
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        run_program(values)
        return time.perf_counter() - start, time.process_time() - start_cpu
    finally:
        gc.enable()
