"""The plan under mocks as canonical JSON: what the engine would receive, to compare two versions of
the program or the SDK tuning (a speed-up must not change it).

    venv/bin/python tools/plan_dump.py --spokes 250 > /tmp/after.json && diff /tmp/before.json /tmp/after.json

Every RegisterResource request (type, name, parent, options, input props, dependencies) and every
RegisterResourceOutputs request, ordered by URN, plus the stack's exports. Left out: where in the
source each resource was declared (moves with any edit), and the throw-away SSH key of this
process, its temporary boot files and the checkout's path (replaced by placeholders, so two processes compare equal).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.mockrun import ROOT, Run, boot_files, run_program, ssh_public_key, stack_values  # noqa: E402

SOURCE_FIELDS = ("sourcePosition", "stackTrace")
SET_FIELDS = ("dependencies", "urns")  # the SDK fills these from sets: their order means nothing
PRIVATE_KEY = re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----.*?-----END OPENSSH PRIVATE KEY-----", re.S)


def _canonical(value: Any, replace: dict[str, str]) -> Any:
    """value with its set-like lists sorted and the process's own key replaced."""
    if isinstance(value, dict):
        return {key: sorted(item) if key in SET_FIELDS else _canonical(item, replace)
                for key, item in value.items() if key not in SOURCE_FIELDS}
    if isinstance(value, list):
        return [_canonical(item, replace) for item in value]
    if isinstance(value, str):
        for old, new in replace.items():
            value = value.replace(old, new)
        return PRIVATE_KEY.sub("<ssh private key>", value)  # its PEM differs at each export (a random check)
    return value


def plan(run: Run) -> dict[str, Any]:
    """The run's requests and exports, canonical (see the module's docstring)."""
    replace = {ssh_public_key(): "<ssh public key>", str(boot_files()): "<boot files>", str(ROOT): "<project>"}
    requests = [{"kind": type(r).__name__, **json_format.MessageToDict(r)} for r in run.requests]
    requests.sort(key=lambda r: (r.get("urn") or f"{r.get('parent', '')}${r['type']}::{r['name']}", r["kind"]))
    return _canonical({"requests": requests, "exports": run.outputs}, replace)


@click.command()
@click.option("--spokes", default=250, show_default=True, type=click.IntRange(1, 250))
@click.option("--stack", default=None, help="a stack file's values (stacks/Pulumi.STACK.yaml) under the spoke count")
def main(spokes: int, stack: str | None) -> None:
    """Print the plan of SPOKES spokes as canonical JSON."""
    run = run_program(stack_values({"spokes": spokes}, stack=stack))
    click.echo(json.dumps(plan(run), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
