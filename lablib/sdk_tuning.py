"""Make the Pulumi Python SDK cheap per resource, for labs of hundreds of spokes.

Measured on `pulumi preview` of the scale stack and under mocks (docs/performance.md,
"Plan and preview"); each change keeps what the engine receives the same:

- the SDK sends every `log.debug` line ("registering resource", "resource
  registration prepared", ...: five per resource) to the engine as a
  synchronous gRPC call on the event loop's thread, so the program stops
  while the engine takes each one. They only show with `pulumi -d`/`-v`:
  set LAB_SDK_DEBUG=1 to keep them;
- its dependency-cycle check walks every dependency of a dependency with
  nested generators: along the chain of seed ISOs (components/node.py) that
  is cubic in the number of spokes. The same reachability, walked with a
  list, is linear;
- it takes a stack trace per resource (the engine records where each
  resource was declared): it reads every frame's source line, which it
  never uses, and turns every frame into a file URI with pathlib. The
  frames are taken without their lines, and the same few files and lines
  recur, so the URIs are cached.
- it computes every resource's URN (used only when there is no engine to ask)
  through four Outputs and three applies, though name, type and parent URN
  are plain strings by then: 5,287 of the 6,291 applies of 250 spokes. Plain strings get
  the same string in an Output directly (known, not secret, no dependencies,
  as the applies give); anything else still goes the SDK's way;
- CPython's collector scans each surviving object at least twice (young, then
  middle generation): 8 % of the plan's instructions, and it frees next to
  nothing, since the program keeps its Outputs and futures until it ends. The
  program's process turns automatic collection off: it lives as long as the
  deployment, and leaves about 40 KiB of cyclic garbage per spoke uncollected.
"""
from __future__ import annotations

import functools
import gc
import os
import sys
import traceback
from types import FrameType
from typing import Any, Callable

import pulumi
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import resource_cycle_breaker, settings

KEEP_DEBUG_ENV = "LAB_SDK_DEBUG"


def reachable(from_resource: pulumi.Resource, to_resource: pulumi.Resource) -> bool:
    """Whether to_resource is from_resource or one of its recorded dependencies, transitively."""
    visited: set[int] = set()
    pending = [from_resource]
    while pending:
        current = pending.pop()
        if current is to_resource:
            return True
        if id(current) in visited:
            continue
        visited.add(id(current))
        pending.extend(resource_cycle_breaker._deps(current))
    return False


def plain_create_urn(original: Callable[..., Any]) -> Callable[..., Any]:
    """original (the SDK's create_urn), answering plain strings without Outputs."""
    def create_urn(name: Any, type_: Any, parent: Any = None, project: str | None = None,
                   stack: str | None = None) -> pulumi.Output[str]:
        if not (type(name) is str and type(type_) is str and (parent is None or type(parent) is str)):
            return original(name, type_, parent, project, stack)
        if parent is not None:
            prefix = parent[0:parent.rfind("::")] + "$"
        else:
            stack = settings.get_stack() if stack is None else stack
            project = settings.get_project() if project is None else project
            prefix = "urn:pulumi:" + stack + "::" + project + "::"
        return pulumi.Output.from_input(prefix + type_ + "::" + name)

    create_urn.original = original  # type: ignore[attr-defined]
    return create_urn


def cached_source_position(original: Callable[[traceback.FrameSummary], Any]) -> Callable[..., Any]:
    """original (the SDK's frame -> source position), computed once per file and line."""
    @functools.lru_cache(maxsize=4096)
    def by_place(filename: str, lineno: int | None) -> Any:
        return original(traceback.FrameSummary(filename, lineno, "", lookup_line=False))

    def position(frame: traceback.FrameSummary) -> Any:
        return by_place(frame.filename, frame.lineno)

    position.original = original  # type: ignore[attr-defined]
    return position


class _TracebackWithoutLines:
    """The traceback module as the SDK's resource module sees it, minus the source lines."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def extract_stack(f: FrameType | None = None, limit: int | None = None) -> traceback.StackSummary:
        """traceback.extract_stack, without reading each frame's line from its file."""
        frame = f if f is not None else sys._getframe().f_back
        stack = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=limit, lookup_lines=False)
        stack.reverse()
        return stack


def _no_debug(*_args: object, **_kwargs: object) -> None:
    """Stands in for pulumi.log.debug: nothing is sent to the engine."""


def tune_sdk() -> None:
    """Apply the changes above to this process (idempotent)."""
    gc.disable()
    resource_cycle_breaker._reachable = reachable
    if not hasattr(sdk_resource.create_urn, "original"):
        sdk_resource.create_urn = plain_create_urn(sdk_resource.create_urn)
    if not hasattr(sdk_resource._get_source_position_for_frame, "original"):
        sdk_resource._get_source_position_for_frame = cached_source_position(
            sdk_resource._get_source_position_for_frame)
    sdk_resource.traceback = _TracebackWithoutLines()  # type: ignore[assignment]
    if not os.environ.get(KEEP_DEBUG_ENV):
        pulumi.log.debug = _no_debug
