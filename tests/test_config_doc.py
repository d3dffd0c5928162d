"""docs/configuration.md is what tools/config_doc.py makes of Pulumi.yaml: one home per key."""
from __future__ import annotations

from tools.config_doc import PAGE, project_config, render


def test_configuration_page_is_generated_from_pulumi_yaml() -> None:
    assert PAGE.read_text() == render(project_config()), \
        "docs/configuration.md is stale: run venv/bin/python tools/config_doc.py > docs/configuration.md"


def test_every_key_has_a_description() -> None:
    assert [key for key, spec in project_config().items() if not str(spec.get("description", "")).strip()] == []
