"""One KPI value parser: `/cro kpi report`, the KPI form and the CSV import read the same
text the same way (the form used to refuse `85%`, the import `1,250`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.handlers.commands.router import CommandRequest, CommandRouter
from crobot.handlers.forms import KPI_REPORT
from crobot.handlers.forms.submit import inline_errors, submit
from crobot.handlers.middleware import Identity
from crobot.services.errors import UserError
from crobot.services.kpi_import import import_csv
from crobot.services.runtime import Runtime
from crobot.storage.models import KpiUpdate
from tests import form_values as form
from tests.conftest import C_SPONSOR, SPONSOR, TODAY, World

NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
ACCEPTED = [("12", 12.0), ("85%", 85.0), (" 7.5 ", 7.5), ("1,250", 1250.0), ("1e1", 10.0)]
REJECTED = ["lots", "1e999", "nan", "inf", "12abc", "+-1", "%"]


def _latest(world: World) -> float | None:
    with world.db.read() as s:
        row = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id.desc())).first()
        return row.value if row else None


def _count(world: World) -> int:
    with world.db.read() as s:
        return len(s.scalars(select(KpiUpdate.id)).all())


def by_command(world: World, raw: str) -> float | str:
    router = CommandRouter(Runtime(world.db, now=lambda: NOW))
    text = f"kpi report ONC-301 query_aging {raw.strip()}"
    reply = router.run(
        CommandRequest("T1", SPONSOR, C_SPONSOR, text),
        WebClient(base_url="http://127.0.0.1:9/api/"),
        tz="UTC",
    )
    return reply.text if reply.is_error else (_latest(world) or 0.0)


def by_form(world: World, raw: str) -> float | str:
    values = {
        "study": form.select("ONC-301"),
        "kpi": form.select("query_aging"),
        "value": form.text(raw),
    }
    view = {"state": {"values": values}, "private_metadata": json.dumps({"channel_id": C_SPONSOR})}
    runtime = Runtime(world.db, now=lambda: NOW)
    try:
        submit(runtime, Identity("T1", SPONSOR), KPI_REPORT, view)
    except UserError as err:
        errors = inline_errors(KPI_REPORT, err)
        assert list(errors) == ["value"]  # on the value input, where the form shows it
        return errors["value"]
    return _latest(world) or 0.0


def by_import(world: World, raw: str) -> float | str:
    text = f'study,org,kpi,period,value\nONC-301,Helix Pharma,query_aging,2026-W47,"{raw}"\n'
    try:
        with world.db.write() as s:
            import_csv(s, world.actor(SPONSOR), text, today=TODAY)
    except UserError as err:
        return str(err)
    return _latest(world) or 0.0


Entry = Callable[[World, str], float | str]
ENTRIES: list[Entry] = [by_command, by_form, by_import]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: str(f.__name__))
def test_the_same_text_is_read_the_same_everywhere(world: World, entry: Entry) -> None:
    for raw, value in ACCEPTED:
        assert entry(world, raw) == value, raw
    stored = _count(world)
    for raw in REJECTED:
        answer = entry(world, raw)
        assert isinstance(answer, str) and "not a number" in answer, (raw, answer)
    assert _count(world) == stored == len(ACCEPTED)
