"""One KPI value reader: a signed `/cro kpi report`, a signed KPI form submission and
`crobot kpi import` read the same text the same way and refuse the same values with the
same words — a decimal comma is never silently a factor of ten, and no value outside its
KPI's range is stored."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crobot.bot.cli import main
from crobot.storage.models import KpiDefinition, KpiUpdate
from tests import form_values as form
from tests.approval_support import send, view_submission
from tests.conftest import APPROVER, C_SPONSOR, World
from tests.fake_slack import FakeSlack
from tests.slash_helpers import slash_bot

# (KPI, as typed, the value stored)
ACCEPTED = [
    ("query_aging", "1.5", 1.5),
    ("query_aging", "1,5", 1.5),  # a decimal comma: one comma, not three digits after it
    ("query_aging", "1,50", 1.5),
    ("query_aging", " 7.5 ", 7.5),
    ("query_aging", "1,500", 1500.0),  # three digits after the comma: thousands
    ("cost_of_quality", "1,000,000", 1_000_000.0),
    ("cost_of_quality", "1,234.5", 1234.5),
    ("screen_failure_rate", "2,4", 2.4),  # the form used to store 24
    ("screen_failure_rate", "85%", 85.0),  # `%` for a percentage KPI
    ("protocol_deviations", "3", 3.0),
    ("query_aging", "1e1", 10.0),
]
# (KPI, as typed, words the refusal must contain)
REJECTED = [
    ("protocol_deviations", "1,5", ["whole number", "read as 1.5"]),  # used to store 15
    ("query_aging", "1,5,0", ["not a number I can read"]),
    ("query_aging", "1.500,5", ["ambiguous", "1500.5"]),
    ("query_aging", "1234,567", ["ambiguous", "1234.567 or 1234567"]),
    ("query_aging", "1_000", ["not a number"]),
    ("query_aging", "١٢", ["digits 0-9"]),  # Arabic-Indic digits
    ("query_aging", "85%", ["percentage", "not measured in percent"]),
    ("query_aging", "1e308", ["cannot be above 3650", "from 0 to 3650"]),
    ("query_aging", "1e999", ["not a number"]),
    ("query_aging", "nan", ["not a number"]),
    ("query_aging", "inf", ["not a number"]),
    ("query_aging", "-1", ["cannot be below 0"]),
    ("query_aging", "lots", ["not a number"]),
    ("screen_failure_rate", "130", ["cannot be above 100", "from 0 to 100"]),
    ("supplier_performance", "4,500", ["read as 4500", "If you meant 4.5"]),
    ("enrollment", "1.500", ["whole number", "If you meant 1500"]),
]

# A value stored, or the refusal's text.
Entry = Callable[[str, str], float | str]


def _rows(world: World) -> int:
    with world.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(KpiUpdate)) or 0)


def _latest(world: World, kpi: str) -> float:
    with world.db.read() as s:
        row = s.scalars(
            select(KpiUpdate)
            .join(KpiDefinition)
            .where(KpiDefinition.key == kpi)
            .order_by(KpiUpdate.id.desc())
        ).first()
        assert row is not None
        return row.value


@pytest.fixture(params=["command", "form", "import"])
def enter(
    request: pytest.FixtureRequest,
    world: World,
    fake_slack: FakeSlack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Entry]:
    if request.param == "import":
        monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
        monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")

        def by_import(kpi: str, raw: str) -> float | str:
            path = tmp_path / "values.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                # The sponsor's value, as the approver's command and form enter it.
                row = ["ONC-301", "Helix Pharma", kpi, "", raw]
                csv.writer(fh).writerows([["study", "org", "kpi", "period", "value"], row])
            if main(["kpi", "import", str(path)]) != 0:
                return capsys.readouterr().err
            return _latest(world, kpi)

        yield by_import
        return
    with slash_bot(world.db, fake_slack) as slash:

        def by_command(kpi: str, raw: str) -> float | str:
            answer = slash.send(f"kpi report ONC-301 {kpi} {raw.strip()}", APPROVER, C_SPONSOR)
            return answer.text if ":warning:" in answer.text else _latest(world, kpi)

        def by_form(kpi: str, raw: str) -> float | str:
            values = {"study": form.select("ONC-301"), "kpi": form.select(kpi)}
            values["value"] = form.text(raw)
            meta = json.dumps({"channel_id": C_SPONSOR})
            payload = view_submission(
                "modal_kpi_report", values, user=APPROVER, private_metadata=meta
            )
            status, body = send(slash.bot, payload)
            assert status == 200
            if not body.strip():
                return _latest(world, kpi)
            answer = json.loads(body)
            assert answer["response_action"] == "errors"
            assert list(answer["errors"]) == ["value"]  # on the value input
            return str(answer["errors"]["value"])

        yield by_command if request.param == "command" else by_form


def test_the_same_text_is_read_the_same_everywhere(world: World, enter: Entry) -> None:
    for kpi, raw, value in ACCEPTED:
        assert enter(kpi, raw) == value, (kpi, raw)
    stored = _rows(world)
    assert stored == len(ACCEPTED)
    for kpi, raw, words in REJECTED:
        answer = enter(kpi, raw)
        assert isinstance(answer, str), (kpi, raw, answer)
        for word in words:
            assert word in answer, (kpi, raw, word, answer)
        assert "Traceback" not in answer
    assert _rows(world) == stored  # nothing of any refused value was stored
