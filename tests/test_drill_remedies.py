"""`drill remedies`' table and verdicts (labctl/drills/remedies.py), on figures made up here."""
from __future__ import annotations

from labctl.drills import DrillReport
from labctl.drills.remedies import Column, table


def report_of(*columns: Column) -> DrillReport:
    report = DrillReport("remedies")
    table(report, list(columns), drop_pct=30, count=200, size=1400, light_loss_pct=1)
    return report


def test_the_failure_replayed_and_the_remedies_holding_pass() -> None:
    report = report_of(Column("spoke1", "computed-mtu", "xfrm", "1500 / 1438 / 1396", pings=(200, 200)),
                       Column("spoke3", "as-deployed", "xfrm", "1500 / 1500 / 1458", pings=(97, 200)))
    assert report.passed, report.lines
    header, *rows = report.lines[1:]
    assert "spoke1 computed-mtu (xfrm)" in header and "spoke3 as-deployed" in header
    assert any(row.startswith("pings of 1400 B lost") and "0/200 (0.0 %)" in row and "103/200 (51.5 %)" in row
               for row in rows)
    assert report.figures["spokes"]["spoke3"]["loss_pct"] == 51.5  # type: ignore[index]


def test_an_as_deployed_spoke_that_loses_too_little_fails() -> None:
    report = report_of(Column("spoke3", "as-deployed", "vti", pings=(170, 200)))
    assert not report.passed and "did not replay" in report.lines[-1]


def test_a_remedy_that_loses_one_ping_fails() -> None:
    report = report_of(Column("spoke1", "computed-mtu", "vti", pings=(199, 200)))
    assert not report.passed and "spoke1 (computed-mtu) lost 0.5 %" in report.lines[-1]


def tcp_column(**fields: object) -> Column:
    return Column("spoke4", "tcp", "xfrm", "1492 / 1492 / 1450", pings=(200, 200), **fields)  # type: ignore[arg-type]


def test_esp_in_tcp_back_through_blocked_udp_with_iketcp_passes_and_the_udp_spoke_stayed_down() -> None:
    report = report_of(Column("spoke2", "computed-mtu", "vti", pings=(200, 200), blocked_back=False, redial_seconds=5),
                       tcp_column(redial_seconds=7.2, iketcp_seen=True))
    assert report.passed, report.lines
    row = next(line for line in report.lines if line.startswith("UDP blocked: tunnel back"))
    assert "not in 30 s; 5 s unblocked" in row and "7 s, over TCP" in row
    assert next(line for line in report.lines if line.startswith("stream opens with IKETCP")).endswith("yes")


def test_a_tcp_spoke_that_is_not_back_or_shows_no_iketcp_fails() -> None:
    assert "did not get its tunnel back" in report_of(tcp_column(redial_seconds=None, iketcp_seen=True)).lines[-1]
    assert "opening with IKETCP" in report_of(tcp_column(redial_seconds=5, iketcp_seen=False)).lines[-1]


def test_a_udp_spoke_back_through_the_block_fails_the_drill() -> None:
    report = report_of(Column("spoke2", "computed-mtu", "vti", pings=(200, 200), blocked_back=True, redial_seconds=5),
                       tcp_column(redial_seconds=5, iketcp_seen=True))
    assert not report.passed and "the block does not hold" in " ".join(report.lines)
