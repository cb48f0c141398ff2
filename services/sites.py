"""Sites of a study and the patients each enrols per period.

A site has a code unique in its study, a name, an ISO 3166-1 alpha-2 country
(services/countries.py), the organisation that manages it, a planned and an actual
activation date, and a status (planned / active / closed). Enrolment is reported per
site and period (`/cro site report`, `crobot site import`): the patients enrolled in that
period. A report goes through the approval flow exactly as a KPI value does
(services/permissions.py `needs_approval`, services/approvals.py); a correction is a new
row superseding the one it corrects, and a site's current report for a period is its
newest that was not rejected. A vendor only finds, reports and sees its own sites
(services/visibility.py `site_filter`): another vendor's site is answered like one that
does not exist.

Study enrolment is the sum over its sites; the forecast (services/enrolment.py) counts
approved reports only.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crobot.services import approvals, audit
from crobot.services.actor import Actor
from crobot.services.countries import check_country
from crobot.services.errors import NotFound, UserError, msg, validate
from crobot.services.kpi_catalog import Period, current_period, parse_period
from crobot.services.lookup import org_by_name, study_named_by, vendor_org_ids
from crobot.services.permissions import needs_approval, require_org_write
from crobot.services.visibility import Audience, Scope, audience_for_person, site_filter
from crobot.storage.models import (
    ApprovalState,
    Site,
    SiteReport,
    SiteStatus,
    Study,
    SubjectType,
)

ADD_HINT = (
    'Write it as `/cro site add STUDY SITE "Name" country:DE org:ORG '
    "[planned:YYYY-MM-DD] [activated:YYYY-MM-DD]`."
)
REPORT_HINT = "Write it as `/cro site report STUDY SITE enrolled N [period:2026-W47]`."
UPDATE_HINT = (
    "Write it as `/cro site update STUDY SITE [planned:DATE] [activated:DATE] [closed:DATE]`."
)
FIELDS = ("code", "name", "country", "org_id", "planned_activation", "activated_on", "status")
REPORT_FIELDS = ("site_id", "period_label", "enrolled", "approval_state", "supersedes_id")
MAX_ENROLLED = 100_000  # patients at one site in one period: more is a typo


def check_country_cell(raw: str) -> str:
    """`check_country` for a CSV cell: a UserError naming the value."""
    try:
        return check_country(raw)
    except ValueError:
        raise UserError(
            msg("`{}` is not an ISO 3166-1 alpha-2 country code (e.g. DE, FR, US).", raw.strip()),
            field="country",
        ) from None


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    study: str
    code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=40)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    country: str
    org: str | None = None
    planned: date | None = None
    activated: date | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        return check_country(v)


def parse_count(raw: object, hint: str = REPORT_HINT) -> int:
    """A patient count as typed (command word, CSV cell): ASCII digits, 0 or more."""
    text = str(raw).strip()
    if text.startswith("-") and text[1:].isdigit():
        raise UserError(
            msg("The enrolled count cannot be negative (got `{}`).", text), hint, field="enrolled"
        )
    if not (text.isascii() and text.isdigit()):
        raise UserError(
            msg("`{}` is not a number of patients.", text), "Give a whole number, e.g. 3."
        )
    value = int(text)
    if value > MAX_ENROLLED:
        raise UserError(
            msg("{} patients in one period at one site is more than crobot accepts.", value),
            f"At most {MAX_ENROLLED}.",
            field="enrolled",
        )
    return value


def add(session: Session, actor: Actor, *, today: date, **data: object) -> Site:
    inp = validate(SiteCreate, data, ADD_HINT)
    study = study_named_by(session, actor, inp.study)
    vendors = vendor_org_ids(session, study.id)
    org_id = org_by_name(session, inp.org).id if inp.org else actor.org_id
    if org_id is None:
        raise UserError("Which organisation manages the site? Give `org:`.", ADD_HINT, field="org")
    if org_id not in vendors and org_id != study.sponsor_org_id:
        raise UserError("That organisation is not on this study.", ADD_HINT, field="org")
    require_org_write(actor, study, vendors, org_id)
    if inp.activated is not None and inp.activated > today:
        raise UserError(
            f"The activation date {inp.activated} is in the future.",
            "`activated:` is when the site opened; give a plan as `planned:`.",
            field="activated",
        )
    code = inp.code.upper()
    exists = session.scalar(
        select(Site.id).where(Site.study_id == study.id, func.upper(Site.code) == code)
    )
    if exists is not None:
        raise UserError(msg("{} already has a site `{}`.", study.code, code), field="code")
    site = Site(
        study_id=study.id,
        code=code,
        name=inp.name,
        country=inp.country,
        org_id=org_id,
        planned_activation=inp.planned,
        activated_on=inp.activated,
        status=SiteStatus.ACTIVE if inp.activated else SiteStatus.PLANNED,
        created_by=actor.label,
    )
    session.add(site)
    session.flush()
    audit.record(
        session,
        actor,
        "site.create",
        "site",
        site.id,
        study_id=study.id,
        after=audit.snapshot(site, *FIELDS),
    )
    return site


def activate(session: Session, actor: Actor, site: Site, on: date, *, today: date) -> None:
    """A planned site opened on `on` (the CSV import's `activated` for a planned site)."""
    if on > today:
        raise UserError(f"The activation date {on} is in the future.", field="activated")
    before = audit.snapshot(site, *FIELDS)
    site.activated_on, site.status = on, SiteStatus.ACTIVE
    session.flush()
    audit.record(
        session,
        actor,
        "site.activate",
        "site",
        site.id,
        study_id=site.study_id,
        before=before,
        after=audit.snapshot(site, *FIELDS),
    )


def update(
    session: Session,
    actor: Actor,
    *,
    today: date,
    study: str,
    site: str,
    planned: date | None = None,
    activated: date | None = None,
    closed: date | None = None,
) -> Site:
    """Re-plan, activate or close a site (closing stops its recruitment in the forecast)."""
    st = study_named_by(session, actor, study)
    found = site_named(session, st, site, actor_audience(session, actor, st))
    require_org_write(actor, st, vendor_org_ids(session, st.id), found.org_id)
    if planned is None and activated is None and closed is None:
        raise UserError("Nothing to change.", UPDATE_HINT)
    for when, what in ((activated, "activation"), (closed, "closing")):
        if when is not None and when > today:
            raise UserError(f"The {what} date {when} is in the future.", UPDATE_HINT)
    if activated is not None and found.activated_on not in (None, activated):
        raise UserError(
            msg("Site {} was activated on {}.", found.code, found.activated_on),
            "An activation date, once given, stays.",
            field="activated",
        )
    opened = activated or found.activated_on
    if closed is not None and (opened is None or closed < opened):
        raise UserError(
            msg("Site {} cannot close before it was activated.", found.code), field="closed"
        )
    before = audit.snapshot(found, *FIELDS, "closed_on")
    if planned is not None:
        found.planned_activation = planned
    if activated is not None:
        found.activated_on, found.status = activated, SiteStatus.ACTIVE
    if closed is not None:
        found.closed_on, found.status = closed, SiteStatus.CLOSED
    session.flush()
    audit.record(
        session,
        actor,
        "site.update",
        "site",
        found.id,
        study_id=st.id,
        before=before,
        after=audit.snapshot(found, *FIELDS, "closed_on"),
    )
    from crobot.services import enrolment  # the forecast reads sites: imported late

    enrolment.recompute(session, st.id, today)
    return found


def actor_audience(session: Session, actor: Actor, study: Study) -> Audience | None:
    """Whose sites `actor` may name: None for the sponsor's authority (every site)."""
    if actor.trusted:
        return None
    return audience_for_person(actor, study, vendor_org_ids(session, study.id))


def site_named(session: Session, study: Study, code: str, audience: Audience | None) -> Site:
    """A site of the study the audience sees (None: any); any other is not found, and
    only visible site codes are suggested."""
    where = [Site.study_id == study.id]
    if audience is not None:
        where.append(site_filter(audience))
    site = session.scalars(
        select(Site).where(*where, func.upper(Site.code) == code.upper())
    ).first()
    if site is None:
        codes = sorted(session.scalars(select(Site.code).where(*where).limit(200)))
        shown = ", ".join("`{}`" for _ in codes[:12])
        known = msg(f"Your sites on {{}}: {shown}.", study.code, *codes[:12]) if codes else None
        raise NotFound(
            msg("There is no site `{}` of yours on {}.", code, study.code), known, field="site"
        )
    return site


def period_end(period: Period) -> date:
    """The last day of a reported period (ISO week, month or day)."""
    if "W" in period.label:
        return period.start + timedelta(days=6)
    if len(period.label) == 7:
        last = calendar.monthrange(period.start.year, period.start.month)[1]
        return period.start.replace(day=last)
    return period.start


@dataclass(frozen=True)
class SiteReported:
    report: SiteReport
    previous: SiteReport | None
    approval_id: int | None

    @property
    def approval_requested(self) -> bool:
        return self.approval_id is not None


def latest_report(session: Session, site_id: int, period_start: date) -> SiteReport | None:
    """The current report of one site for one period (what a new report corrects)."""
    return session.scalars(
        select(SiteReport)
        .where(
            SiteReport.site_id == site_id,
            SiteReport.period_start == period_start,
            SiteReport.approval_state != ApprovalState.REJECTED,
        )
        .order_by(SiteReport.id.desc())
        .limit(1)
    ).first()


def report(
    session: Session,
    actor: Actor,
    *,
    today: date,
    study: str,
    site: str,
    enrolled: object,
    period: str | None = None,
    recompute: bool = True,
) -> SiteReported:
    """Report a site's enrolment for a period; `recompute` the forecast if it counts now."""
    st = study_named_by(session, actor, study)
    found = site_named(session, st, site, actor_audience(session, actor, st))
    vendors = vendor_org_ids(session, st.id)
    require_org_write(actor, st, vendors, found.org_id)
    count = parse_count(enrolled)
    per = parse_period(period) if period else current_period(today)
    if per.start > today:
        raise UserError(
            msg("The period {} has not started yet.", per.label),
            "Report enrolment for the current or a past period.",
            field="period",
        )
    if found.activated_on is None:
        raise UserError(
            msg("Site {} is not active yet: it has no activation date.", found.code),
            msg(
                "Give its activation date first: `/cro site update {} {} activated:DATE`.",
                st.code,
                found.code,
            ),
            field="site",
        )
    if found.activated_on > period_end(per):
        raise UserError(
            msg(
                "Site {} was activated on {}, after the period {} it reports.",
                found.code,
                found.activated_on,
                per.label,
            ),
            "Report periods from the site's activation on.",
            field="period",
        )
    previous = latest_report(session, found.id, per.start)
    waits = needs_approval(actor, st, found.org_id)
    row = SiteReport(
        site_id=found.id,
        study_id=st.id,
        org_id=found.org_id,
        period_start=per.start,
        period_label=per.label,
        enrolled=count,
        submitted_by=actor.label,
        approval_state=ApprovalState.PENDING if waits else ApprovalState.APPROVED,
        supersedes_id=previous.id if previous else None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "site.report" if previous is None else "site.correct",
        "site_report",
        row.id,
        study_id=st.id,
        before=audit.snapshot(previous, *REPORT_FIELDS) if previous else None,
        after=audit.snapshot(row, *REPORT_FIELDS),
    )
    approval_id = None
    if waits:
        approval_id = approvals.request(
            session,
            actor,
            subject_type=SubjectType.SITE_REPORT,
            subject_id=row.id,
            study_id=st.id,
            org_id=found.org_id,
            summary={
                "kind": "site_enrolment",
                "study": st.code,
                "site": found.code,
                "site_name": found.name,
                "period": per.label,
                "old": previous.enrolled if previous else None,
                "new": count,
            },
        ).id
    elif recompute:
        from crobot.services import enrolment  # the forecast reads sites: imported late

        enrolment.recompute(session, st.id, today)
    return SiteReported(row, previous, approval_id)


@dataclass(frozen=True)
class SiteRow:
    site: Site
    enrolled: int  # current reports (approved, and pending for an audience that sees them)
    pending: int  # of which awaiting approval


def current_reports(
    session: Session, site_ids: Iterable[int], *, approved_only: bool, until: date | None = None
) -> list[SiteReport]:
    """Each site's current report per period: its newest not rejected one (`approved_only`:
    its newest approved one, what the forecast counts)."""
    ids = list(site_ids)
    if not ids:
        return []
    conds: list[ColumnElement[bool]] = [SiteReport.site_id.in_(ids)]
    if approved_only:
        conds.append(SiteReport.approval_state == ApprovalState.APPROVED)
    else:
        conds.append(SiteReport.approval_state != ApprovalState.REJECTED)
    if until is not None:
        conds.append(SiteReport.period_start <= until)
    newest = (
        select(func.max(SiteReport.id).label("id"))
        .where(*conds)
        .group_by(SiteReport.site_id, SiteReport.period_start)
        .subquery()
    )
    return list(session.scalars(select(SiteReport).join(newest, newest.c.id == SiteReport.id)))


def list_for(session: Session, audience: Audience) -> list[SiteRow]:
    """The sites an audience sees, by code, with their enrolment so far."""
    sites = list(
        session.scalars(select(Site).where(site_filter(audience)).order_by(Site.code).limit(500))
    )
    approved_only = audience.scope not in (Scope.SPONSOR, Scope.VENDOR)
    totals: dict[int, int] = {}
    pending: dict[int, int] = {}
    for r in current_reports(session, (s.id for s in sites), approved_only=approved_only):
        totals[r.site_id] = totals.get(r.site_id, 0) + r.enrolled
        if r.approval_state == ApprovalState.PENDING:
            pending[r.site_id] = pending.get(r.site_id, 0) + r.enrolled
    return [SiteRow(s, totals.get(s.id, 0), pending.get(s.id, 0)) for s in sites]


@dataclass(frozen=True)
class Rollup:
    """Study enrolment and site activation, summed over the sites an audience sees."""

    enrolled: int
    sites: int
    active: int
    first_activated: date | None
    all_activated: date | None  # the last activation, once every site is active


def rollup(rows: list[SiteRow]) -> Rollup:
    dates = [r.site.activated_on for r in rows if r.site.activated_on is not None]
    every = bool(rows) and len(dates) == len(rows)
    return Rollup(
        enrolled=sum(r.enrolled for r in rows),
        sites=len(rows),
        active=sum(1 for r in rows if r.site.status == SiteStatus.ACTIVE),
        first_activated=min(dates, default=None),
        all_activated=max(dates) if every else None,
    )
