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
