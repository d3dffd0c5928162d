"""labctl's failures: any failure of a command is one line `labctl: ...`, the traceback only with --debug."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from pulumi import automation as auto

from labctl import host
from labctl.cli import cli
from labctl.failures import one_line


def failing(error: BaseException, monkeypatch: pytest.MonkeyPatch):
    def enter(stack: str) -> None:
        raise error
    monkeypatch.setattr(host, "enter_lab_namespace", enter)


@pytest.mark.parametrize(("error", "line"), [
    (RuntimeError("boom\nmore detail"), "labctl: RuntimeError: boom (--debug shows the traceback)\n"),
    (click.ClickException("stack local is not up"), "labctl: stack local is not up\n"),
    (auto.errors.CommandError(auto.CommandResult(
        stdout="Updating (local):\n", stderr="error: could not read plugin [libvirt]: no such file\n", code=255)),
     "labctl: pulumi failed: could not read plugin [libvirt]: no such file (--debug shows the traceback)\n"),
])
def test_a_failing_command_says_one_line(error: BaseException, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failing(error, monkeypatch)
    result = CliRunner().invoke(cli, ["diagnose", "local"])
    assert (result.exit_code, result.output) == (1, line)


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    failing(RuntimeError("boom"), monkeypatch)
    result = CliRunner().invoke(cli, ["--debug", "diagnose", "local"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_a_pulumi_error_without_an_error_line_gives_its_exit_code() -> None:
    assert one_line(auto.errors.CommandError(auto.CommandResult(stdout="", stderr="", code=7))) == \
        "pulumi failed: exit code 7"
