"""ping_loss_each: every address pinged at once in one command, each answer counted for its own address."""
from __future__ import annotations

import subprocess

from harness import ROOT
from labctl.node import ping_loss_each


class LocalNode:
    """Runs the command in the lab image's Debian tree (its sh and ping, this machine's network), as
    Node.run does on a VM: sh -c, stderr appended when not checked."""

    name = "local"

    def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
        done = subprocess.run([str(ROOT / "scripts" / "in-root.sh"), "sh", "-c", command], capture_output=True,
                              text=True, timeout=timeout)
        return done.stdout + ("" if check else done.stderr)


def test_each_address_gets_its_own_count_from_one_command() -> None:
    """127.0.0.1 and 127.0.0.2 answer (loopback: nothing leaves the machine)."""
    node = LocalNode()
    found = ping_loss_each(node, ["127.0.0.1", "127.0.0.2"], count=3)  # type: ignore[arg-type]
    assert found == {"127.0.0.1": (3, 3), "127.0.0.2": (3, 3)}


def test_at_once_pings_a_group_at_a_time_each_after_the_last() -> None:
    class Recorded(LocalNode):
        def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
            self.command = command
            return super().run(command, timeout, check)
    node = Recorded()
    addresses = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    found = ping_loss_each(node, addresses, count=2, at_once=2)  # type: ignore[arg-type]
    assert found == {address: (2, 2) for address in addresses}
    groups = node.command.split(" wait; ")
    assert [group.count(" &") for group in groups] == [2, 2, 1] and groups[-1].endswith(" wait")


def test_an_address_without_a_ping_summary_counts_as_nothing_answered() -> None:
    class Canned(LocalNode):
        def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
            assert command.count(" &") == 2 and command.endswith(" wait")
            return ("10.20.0.2 3 packets transmitted, 3 received, 0% packet loss, time 402ms\n"
                    "10.20.0.22 ping: sendmsg: Message too long\n")
    found = ping_loss_each(Canned(), ["10.20.0.2", "10.20.0.22"], count=3)  # type: ignore[arg-type]
    assert found == {"10.20.0.2": (3, 3), "10.20.0.22": (0, 3)}
