"""The `inventory` output as Ansible reads it: the real ansible-inventory, no warning, the lab's hosts,
groups, key and interpreter (the e2e test pings the running lab through it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import run_program, stack_values
from lablib import names, report

ANSIBLE_BIN = Path(sys.executable).parent  # ansible-core comes with requirements-dev.txt, into this venv


def ansible_env(home: Path) -> dict[str, str]:
    """This environment without any ANSIBLE_* setting, and a HOME of its own: no user's ansible.cfg
    or ~/.ansible decides the outcome."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}, "HOME": str(home)}


def test_ansible_inventory_lists_the_lab_without_a_warning(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(run_program(stack_values({"spokes": 3, "routedSpokes": [2]})).outputs["inventory"])
    result = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "--list", "-i", str(inventory)], cwd=tmp_path,
                            env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    listed = json.loads(result.stdout)
    assert listed["all"]["children"] == ["ungrouped", report.HUB_GROUP, report.SPOKE_GROUP]
    assert listed[report.HUB_GROUP]["hosts"] == [names.HUB]
    assert listed[report.SPOKE_GROUP]["hosts"] == ["spoke1", "spoke2", "spoke3"]
    hostvars = listed["_meta"]["hostvars"]
    assert {site: v["ansible_host"] for site, v in hostvars.items()} == {
        "hub": "10.10.0.2", "spoke1": "10.10.0.3", "spoke2": "10.10.0.4", "spoke3": "10.10.0.5"}
    for site, values in hostvars.items():
        assert values["ansible_user"] == names.SSH_USER, site
        assert values["ansible_ssh_private_key_file"] == str(names.SSH_KEY_FILE), site
        assert values["ansible_python_interpreter"] == names.VM_PYTHON, site
    assert [site for site, v in hostvars.items() if not v["behind_nat"]] == ["hub", "spoke2"]
