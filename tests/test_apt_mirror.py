"""scripts/apt-mirror.sh picks the Debian mirror from apt's own view of the sources.

apt itself parses a throw-away configuration (APT_CONFIG), so both source
formats and `Enabled: no` are apt's reading, not ours.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import ROOT

SCRIPT = ROOT / "scripts" / "apt-mirror.sh"


def own_codename() -> str:
    """The release of the machine running the test (the fallback apt-mirror.sh uses)."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    pytest.fail("/etc/os-release names no VERSION_CODENAME")


def apt_mirror(tmp_path: Path, release: str, sources: str = "", one_line: str = "") -> subprocess.CompletedProcess[str]:
    parts = tmp_path / "sources.list.d"
    parts.mkdir(exist_ok=True)
    (parts / "lab.sources").write_text(sources)
    (tmp_path / "sources.list").write_text(one_line)
    conf = tmp_path / "apt.conf"
    conf.write_text(f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\nDir::Etc::sourceparts "{parts}";\n')
    return subprocess.run(["bash", "-c", f'. "{SCRIPT}" && apt_mirror "$1"', "apt-mirror", release],
                          env={"APT_CONFIG": str(conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          capture_output=True, text=True, timeout=30)


def test_the_entry_of_the_suite_wins(tmp_path: Path) -> None:
    sources = ("Types: deb\nURIs: http://other.invalid/debian\nSuites: sid\nComponents: main\n\n"
               "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: trixie trixie-updates\nComponents: main\n\n"
               "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: trixie-security\n"
               "Components: main\n")
    assert apt_mirror(tmp_path, "trixie", sources).stdout == "http://mirror.invalid/debian\n"
    assert apt_mirror(tmp_path, "trixie-security", sources).stdout == "http://security.invalid/debian-security\n"


def test_one_line_sources_and_disabled_entries(tmp_path: Path) -> None:
    disabled = "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: trixie\nComponents: main\n"
    result = apt_mirror(tmp_path, "trixie", disabled, "deb [trusted=yes] http://line.invalid/debian trixie main\n")
    assert result.stdout == "http://line.invalid/debian\n"


def test_another_suite_falls_back_to_the_machines_own(tmp_path: Path) -> None:
    own = own_codename()
    sources = (f"Types: deb\nURIs: http://own.invalid/debian\nSuites: {own}\nComponents: main\n\n"
               f"Types: deb\nURIs: http://own-security.invalid/debian-security\nSuites: {own}-security\n"
               "Components: main\n")
    assert apt_mirror(tmp_path, "labtest", sources).stdout == "http://own.invalid/debian\n"
    assert apt_mirror(tmp_path, "labtest-security", sources).stdout == \
        "http://own-security.invalid/debian-security\n"


def test_no_source_is_an_error_that_says_what_to_set(tmp_path: Path) -> None:
    result = apt_mirror(tmp_path, "trixie")
    assert result.returncode != 0 and result.stdout == ""
    assert "no apt source for 'trixie'" in result.stderr and "LAB_DEBIAN_MIRROR" in result.stderr
