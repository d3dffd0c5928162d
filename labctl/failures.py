"""How a labctl command fails: one line `labctl: <what failed>`, the traceback only with --debug.

A user of the lab meets a failure at a terminal or in CI's log: the line names what failed
(a Pulumi command's own error line, not the Automation API's dump of both streams); the
traceback is for whoever debugs labctl itself.
"""
from __future__ import annotations

import re
import traceback
from typing import IO, Any

import click
from pulumi import automation as auto

PROG = "labctl"


class Failure(click.ClickException):
    """A failed command, shown as one line `labctl: message` on stderr."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{PROG}: {self.format_message()}", file=file, err=file is None)


def pulumi_error(text: str) -> str:
    """The first `error:` line of a failed Pulumi command (the Automation API's error holds its
    exit code, stdout and stderr), else its exit code."""
    found = re.search(r"\berror: *(\S.*)", text)
    if found:
        return found.group(1).strip()
    code = re.search(r"^ *code: (-?\d+)", text, re.MULTILINE)
    return f"exit code {code.group(1) if code else '?'}"


def one_line(error: BaseException) -> str:
    """What failed, in one line."""
    if isinstance(error, auto.errors.CommandError):
        return f"pulumi failed: {pulumi_error(str(error))}"
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class LabGroup(click.Group):
    """The top command group: every failure below it ends as one Failure line."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.UsageError, Failure):
            raise
        except click.ClickException as error:  # a message labctl wrote for the user
            if debug:
                traceback.print_exc()
            raise Failure(error.format_message()) from None
        except Exception as error:
            if debug:
                raise
            raise Failure(f"{one_line(error)} (--debug shows the traceback)") from None
