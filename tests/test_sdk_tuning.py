"""lablib.sdk_tuning: the SDK still calls what it replaces, and the replacements answer the same."""
from __future__ import annotations

import asyncio
import gc
import inspect
import traceback

import pulumi
from hypothesis import given
from hypothesis import strategies as st
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import resource_cycle_breaker

from lablib import sdk_tuning
from tools.mockrun import run_program, stack_values
from tools.plan_dump import plan

DEPS = resource_cycle_breaker._DEPENDENCIES_PROPERTY


class Node:
    """Stands in for a Resource: hashable by identity, dependencies under the SDK's attribute."""


def test_the_sdk_still_calls_what_is_replaced() -> None:
    """If a Pulumi upgrade renames these, the tuning would silently do nothing: fail here instead."""
    assert "_reachable" in inspect.getsource(resource_cycle_breaker.declare_dependency)
    assert "_get_source_position_for_frame(frame)" in inspect.getsource(sdk_resource._get_stack_trace)
    assert "log.debug(" in inspect.getsource(sdk_resource.register_resource)
    assert "traceback.extract_stack()" in inspect.getsource(sdk_resource._get_stack_trace)
    assert "await create_urn(name, ty, resolver.parent_urn)" in inspect.getsource(sdk_resource.register_resource)


def original_reachable(source: object, target: object) -> bool:
    """The SDK's own walk (nested generators), kept here to compare against."""
    visited: set[int] = set()

    def walk(node: object):  # type: ignore[no-untyped-def]
        if id(node) in visited:
            return
        visited.add(id(node))
        yield node
        for dep in getattr(node, DEPS, set()):
            yield from walk(dep)

    return any(node is target for node in walk(source))


@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))))
def test_reachable_answers_as_the_sdk_does(graph: tuple[int, list[tuple[int, int]]]) -> None:
    count, edges = graph
    nodes = [Node() for _ in range(count)]
    for a, b in edges:  # cycles included: the walk must still end
        setattr(nodes[a], DEPS, getattr(nodes[a], DEPS, set()) | {nodes[b]})
    for a in nodes:
        for b in nodes:
            assert sdk_tuning.reachable(a, b) == original_reachable(a, b)  # type: ignore[arg-type]


def test_a_long_chain_is_walked_in_linear_time() -> None:
    nodes = [Node() for _ in range(20000)]  # recursion would overflow the stack here
    for previous, node in zip(nodes, nodes[1:]):
        setattr(node, DEPS, {previous})
    assert sdk_tuning.reachable(nodes[-1], nodes[0])
    assert not sdk_tuning.reachable(nodes[0], nodes[-1])


def test_cached_source_position_gives_the_sdks_answer() -> None:
    original = sdk_resource._get_source_position_for_frame
    original = getattr(original, "original", original)  # tune_sdk() may have run in this process
    cached = sdk_tuning.cached_source_position(original)
    for frame in traceback.extract_stack() + [traceback.FrameSummary("", 3, "f"), traceback.FrameSummary("x.py", None, "f")]:
        assert cached(frame) == original(frame)
        assert cached(frame) == original(frame)  # second call: from the cache


def test_stack_without_lines_has_the_same_frames() -> None:
    def here() -> tuple[traceback.StackSummary, traceback.StackSummary]:
        return traceback.extract_stack(), sdk_tuning._TracebackWithoutLines().extract_stack()

    with_lines, without = here()
    assert [(f.filename, f.lineno, f.name) for f in without] == [(f.filename, f.lineno, f.name) for f in with_lines]
    assert sdk_tuning._TracebackWithoutLines().format_exc is traceback.format_exc


def test_debug_lines_are_kept_on_request(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    original = pulumi.log.debug
    try:
        monkeypatch.setenv(sdk_tuning.KEEP_DEBUG_ENV, "1")
        pulumi.log.debug = original
        sdk_tuning.tune_sdk()
        assert pulumi.log.debug is original
        monkeypatch.delenv(sdk_tuning.KEEP_DEBUG_ENV)
        sdk_tuning.tune_sdk()
        assert pulumi.log.debug is sdk_tuning._no_debug
    finally:
        pulumi.log.debug = original
        gc.enable()  # tune_sdk() turned the collector off for this process


def test_plain_create_urn_gives_the_sdks_answer() -> None:
    original = getattr(sdk_resource.create_urn, "original", sdk_resource.create_urn)
    fast = sdk_tuning.plain_create_urn(original)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def answers(output: pulumi.Output) -> tuple[object, ...]:
        return (await output.future(), await output.is_known(), await output.is_secret(),
                await output.resources())

    cases = [("n", "t:m:T", "urn:pulumi:s::p::a:b:C::x", None, None), ("n", "t:m:T", "", None, None),
             ("n", "t:m:T", None, "p", "s"), ("n", "t:m:T", "urn:pulumi:s::p::a$b::x", None, None)]
    try:
        for name, typ, parent, project, stack in cases:
            got = loop.run_until_complete(answers(fast(name, typ, parent, project, stack)))
            assert got == loop.run_until_complete(answers(original(name, typ, parent, project, stack)))
        secret_name = pulumi.Output.secret("n")
        got = loop.run_until_complete(answers(fast(secret_name, "t:m:T", "", None, None)))
        assert got == ("$t:m:T::n", True, True, set())  # not plain: the SDK's own way
    finally:
        loop.close()


def test_the_plan_is_the_sdks_own(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The canonical plan (tools/plan_dump.py) with and without the tuning that touches it."""
    tuned = plan(run_program(stack_values({"spokes": 3})))
    monkeypatch.setattr(sdk_tuning, "tune_sdk", gc.enable)
    for name in ("create_urn", "_get_source_position_for_frame"):
        monkeypatch.setattr(sdk_resource, name, getattr(getattr(sdk_resource, name), "original"))
    monkeypatch.setattr(sdk_resource, "traceback", traceback)
    assert plan(run_program(stack_values({"spokes": 3}))) == tuned
