"""RemoteConfig's push as the VM runs it: push_script through the real `sh -s` (dash, the lab images'
/bin/sh), files into a temporary directory. One script per push (the wait, every file, the up
script), so the VM pays for one exec."""
from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from providers.remote_config import PUSH_END, push_script

# Contents a here-document of the plain text would break: no trailing newline, the delimiter itself,
# quotes, `$`, a backslash, a line that is only a dot, bytes beyond ASCII.
AWKWARD = f"psk: \"it's $HOME\\n\" `x`\n{PUSH_END}\n.\nno newline at the end: é"


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=False, timeout=60)


def test_each_file_lands_byte_for_byte_with_its_mode_before_the_up_script(tmp_path: Path) -> None:
    secret, conf = tmp_path / "ipsec.d" / "hub-spoke1.secrets", tmp_path / "deep" / "new" / "hub-spoke1.conf"
    files = [{"path": str(secret), "mode": "0600", "content": AWKWARD},
             {"path": str(conf), "mode": "0644", "content": "conn hub-spoke1\n\tauto=add\n"}]
    seen = tmp_path / "seen-by-up-script"
    result = run(push_script(files, f"set -eu\ncat {secret} {conf} > {seen}\n", "true"))
    assert result.returncode == 0, result.stderr
    assert secret.read_text() == AWKWARD and conf.read_text() == files[1]["content"]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert seen.read_text() == AWKWARD + files[1]["content"]


def test_a_payload_not_done_stops_the_push_before_any_file(tmp_path: Path) -> None:
    target, ran = tmp_path / "hub-spoke1.conf", tmp_path / "up-script-ran"
    script = push_script([{"path": str(target), "mode": "0644", "content": "conn x\n"}], f"touch {ran}\n", "false")
    result = run(script)
    assert result.returncode == 1 and "first-boot payload is not done" in result.stderr
    assert not target.exists() and not ran.exists()


def test_a_failing_up_script_fails_the_push(tmp_path: Path) -> None:
    result = run(push_script([], "set -eu\nfalse\necho not reached\n", "true"))
    assert result.returncode != 0 and "not reached" not in result.stdout


def test_no_content_is_on_a_command_line() -> None:
    """The script goes over the exec's stdin; its only command line is `sudo sh -s`. In the script
    the content is base64 in a here-document, never an argument of a command."""
    script = push_script([{"path": "/etc/ipsec.d/x.secrets", "mode": "0600", "content": AWKWARD}], "", "true")
    assert AWKWARD not in script and "psk" not in script
    assert [line for line in script.splitlines() if line.startswith("base64 -d")] == [
        f"base64 -d <<'{PUSH_END}' | install -D -o root -g root -m 0600 /dev/stdin /etc/ipsec.d/x.secrets.push-$$"]


def test_pushes_at_once_that_share_a_file_all_land_it(tmp_path: Path) -> None:
    """The hub's pushes run at once and each writes lab-updown: each writes beside the path and renames
    onto it (`install` straight onto the path failed one push with "File exists" on a running lab)."""
    shared = tmp_path / "sbin" / "lab-updown"
    content = "#!/bin/sh\n" + "# padding\n" * 20000
    script = push_script([{"path": str(shared), "mode": "0755", "content": content}], "", "true")
    pushes = [subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(8)]
    for push in pushes:
        assert push.stdin is not None
        push.stdin.write(script)
        push.stdin.close()
    assert [(push.wait(timeout=60), push.stderr.read() if push.stderr else "") for push in pushes] == [(0, "")] * 8
    assert shared.read_text() == content and stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert sorted(path.name for path in shared.parent.iterdir()) == ["lab-updown"]
