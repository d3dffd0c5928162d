"""The domain XSLT, applied with xsltproc as the libvirt provider applies it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lablib import names
from lablib.render import render_console_xslt

DOMAIN = ('<domain type="{type}"><name>lab-ci-hub</name>{features}'
          '<devices><console type="pty"><target type="serial" port="0"/></console></devices></domain>')


def transform(tmp_path: Path, domain_type: str, features: str) -> str:
    (tmp_path / "d.xsl").write_text(render_console_xslt(names.console_log_path("lab-ci-hub")))
    (tmp_path / "d.xml").write_text(DOMAIN.format(type=domain_type, features=features))
    return subprocess.run(["xsltproc", tmp_path / "d.xsl", tmp_path / "d.xml"], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("features", ["", "<features><acpi/></features>"])
def test_software_emulation_gets_a_small_translation_cache(tmp_path: Path, features: str) -> None:
    out = transform(tmp_path, "qemu", features)
    assert out.count('<tb-cache unit="MiB">64</tb-cache>') == 1, out
    assert out.count("<features>") == 1, out
    assert ("<acpi/>" in out) == bool(features), out


def test_kvm_domain_keeps_its_features_untouched(tmp_path: Path) -> None:
    out = transform(tmp_path, "kvm", "<features><acpi/></features>")
    assert "tcg" not in out and "<acpi/>" in out, out


def test_serial_console_logs_to_a_file(tmp_path: Path) -> None:
    out = transform(tmp_path, "qemu", "")
    assert '<log file="/var/log/libvirt/qemu/lab-ci-hub-console.log" append="off"/>' in out, out
