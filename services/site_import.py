"""Sites and their enrolment from CSV (`crobot site import`): all rows or none.

Columns: study, site, country, org, activated, period, enrolled — any order — and,
optionally, name and planned (a new site without a name is named by its code). Each row
names a site, created on its first row (then `country` and `org` are required and
`activated` may be empty for a planned site) and matched on later rows and later imports
(what a row says of country, org and activation must agree with what is stored; an empty
`activated` leaves it as it is, a date activates a planned site). A row with `period`
and `enrolled` reports that period's enrolment, read as `/cro site report` reads it; a
report waits for a sponsor approver like any value not entered by one. Every row is
checked first; one bad row and nothing is stored. When the file is in, each study's
forecast is recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services import enrolment, sites
from crobot.services.actor import Actor
from crobot.services.errors import UserError, msg
from crobot.services.kpi_import import CsvFile, ImportResult, Row, read_rows
from crobot.services.lookup import org_by_name, study_named_by
from crobot.storage.models import Site

REQUIRED = ("study", "site", "country", "org", "activated", "period", "enrolled")
OPTIONAL = ("name", "planned")


def import_csv(
    session: Session,
    actor: Actor,
    file: CsvFile,
    *,
    today: date,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    def store(row: Row) -> tuple[str, int]:
        with session.begin_nested():  # a failing row leaves nothing behind
            return _store(session, actor, row, today)

    done = read_rows(
        file.text, REQUIRED, OPTIONAL, store, command_hint=sites.REPORT_HINT, progress=progress
    )
    for study_id in sorted({study_id for _, study_id in done}):
        enrolment.recompute(session, study_id, today)
    return ImportResult(len(done), {code for code, _ in done})


def _date(raw: str, what: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UserError(msg(f"`{{}}` is not a {what} (YYYY-MM-DD).", raw)) from None


def _store(session: Session, actor: Actor, row: Row, today: date) -> tuple[str, int]:
    if not row["study"] or not row["site"]:
        raise UserError("`study` and `site` are required on every row.")
    study = study_named_by(session, actor, row["study"])
    activated = _date(row["activated"], "activation date")
    planned = _date(row.get("planned", ""), "planned activation date")
    site = session.scalars(
        select(Site).where(Site.study_id == study.id, func.upper(Site.code) == row["site"].upper())
    ).first()
    if site is None:
        if not row["country"] or not row["org"]:
            raise UserError(
                msg("Site {} is new: give its `country` and `org`.", row["site"]), field="site"
            )
        site = sites.add(
            session,
            actor,
            today=today,
            study=study.code,
            code=row["site"],
            name=row.get("name") or row["site"],
            country=row["country"],
            org=row["org"],
            planned=planned,
            activated=activated,
        )
    else:
        _agrees(session, site, row, activated)
        if activated is not None and site.activated_on is None:
            sites.activate(session, actor, site, activated, today=today)
    if row["period"] or row["enrolled"]:
        if not (row["period"] and row["enrolled"]):
            raise UserError("Give both `period` and `enrolled`, or neither.")
        sites.report(
            session,
            actor,
            today=today,
            study=study.code,
            site=site.code,
            enrolled=row["enrolled"],
            period=row["period"],
            recompute=False,
        )
    return study.code, study.id


def _agrees(session: Session, site: Site, row: Row, activated: date | None) -> None:
    """A known site's row must not contradict what is stored."""
    if row["country"] and sites.check_country_cell(row["country"]) != site.country:
        raise UserError(
            msg("Site {} is in {}, not {}.", site.code, site.country, row["country"]),
            field="country",
        )
    if row["org"] and org_by_name(session, row["org"]).id != site.org_id:
        raise UserError(
            msg("Site {} is managed by {}, not {}.", site.code, site.org.name, row["org"]),
            field="org",
        )
    if activated is not None and site.activated_on not in (None, activated):
        raise UserError(
            msg(
                "Site {} was activated on {}; the file says {}.",
                site.code,
                site.activated_on,
                activated,
            ),
            field="activated",
        )
