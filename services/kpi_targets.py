"""Which target applies to a KPI of one study and organisation, and setting it.

Precedence, the one rule every view uses (`/cro kpi show | trend`, `/cro status`, digests,
charts, scorecards): the study's target for that organisation ("study+org"), else the
study-wide one ("study"), else the catalogue's default ("default"), else none. Every view
says which one it used (`AppliedTarget.describe`).

Targets are keyed by KPI key, so a computed measure (services/computed_keys.py) takes one
as a catalogue KPI does. Only sponsor approvers (and the operator, the CLI) set or clear
them (services/permissions.py `require_target_setter`); a target lies inside the KPI's
range. Setting and clearing are audited (`kpi.target.set`, `kpi.target.clear`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session, aliased

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.computed_keys import COMPUTED_MEASURES
from crobot.services.errors import NotFound, UserError, msg
from crobot.services.kpi_catalog import key_word, normalise_key
from crobot.services.kpi_units import natural_bounds
from crobot.services.kpi_values import parse_value, range_text, shown
from crobot.services.lookup import org_by_name, study_named_by, study_org_ids, suggest_names
from crobot.services.permissions import require_target_setter
from crobot.storage.models import Direction, KpiDefinition, KpiTarget, Organization, Study

STUDY_ORG, STUDY, DEFAULT, NONE = "study+org", "study", "default", "none"
TARGET_HINT = "Write it as `/cro kpi target STUDY KPI N [org:ORG]`, or `… KPI --clear [org:ORG]`."
SET, CLEAR = "kpi.target.set", "kpi.target.clear"
FIELDS = ("study_id", "kpi_key", "org_id", "target")
Rows = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class AppliedTarget:
    value: float | None
    source: str  # "study+org", "study", "default" or "none"
    # Who set a "study+org" target for whom, for `describe`; known where it was loaded.
    study_code: str | None = None
    org_name: str | None = None

    def describe(self) -> str:
        """`target 80 (ONC-301, Apex CRO)`, `target 80 (study)`, `target 80 (default)`."""
        if self.value is None:
            return "no target"
        return f"target {shown(self.value)} ({self.where()})"

    def where(self) -> str:
        """Whose target it is, as `describe` says it: `ONC-301, Apex CRO`, `study`,
        `default` (it may name an organisation: a value, to escape)."""
        if self.source == STUDY_ORG:
            return ", ".join(n for n in (self.study_code, self.org_name) if n) or "organisation"
        return self.source

    def met_by(self, value: float, direction: Direction) -> bool | None:
        """Whether `value` meets it (None: there is no target)."""
        if self.value is None:
            return None
        return value >= self.value if direction == Direction.UP else value <= self.value


def applied(
    org_target: float | None,
    study_target: float | None,
    default: float | None,
    *,
    study_code: str | None = None,
    org_name: str | None = None,
) -> AppliedTarget:
    """The precedence rule: the organisation's, the study's, the default, none."""
    if org_target is not None:
        return AppliedTarget(org_target, STUDY_ORG, study_code, org_name)
    if study_target is not None:
        return AppliedTarget(study_target, STUDY, study_code)
    if default is not None:
        return AppliedTarget(default, DEFAULT)
    return AppliedTarget(None, NONE)


class TargetBook:
    """All targets of one study, loaded in one query (`targets_for_study`)."""

    def __init__(
        self,
        study_id: int,
        entries: Mapping[tuple[str, int | None], float],
        *,
        study_code: str | None = None,
        org_names: Mapping[int, str] | None = None,
    ) -> None:
        self.study_id = study_id
        self._entries = dict(entries)
        self._study_code = study_code
        self._org_names = dict(org_names or {})

    def get(self, kpi_key: str, org_id: int | None, default: float | None) -> AppliedTarget:
        own = self._entries.get((kpi_key, org_id)) if org_id is not None else None
        return applied(
            own,
            self._entries.get((kpi_key, None)),
            default,
            study_code=self._study_code,
            org_name=self._org_names.get(org_id) if org_id is not None else None,
        )

    def all_for(self, kpi_key: str, default: float | None) -> list[AppliedTarget]:
        """The study-wide target that applies, then each organisation's own, by name."""
        own = [
            self.get(kpi_key, org_id, default)
            for key, org_id in self._entries
            if key == kpi_key and org_id is not None
        ]
        return [self.get(kpi_key, None, default), *sorted(own, key=lambda t: t.org_name or "")]

    def __len__(self) -> int:
        return len(self._entries)


def _rows_stmt(study_id: int) -> Select[str, int | None, float, str | None, str]:
    return (
        select(KpiTarget.kpi_key, KpiTarget.org_id, KpiTarget.target, Organization.name, Study.code)
        .join(Study, Study.id == KpiTarget.study_id)
        .outerjoin(Organization, Organization.id == KpiTarget.org_id)
        .where(KpiTarget.study_id == study_id)
    )


def _book(study_id: int, rows: Iterable[Any]) -> TargetBook:
    entries: dict[tuple[str, int | None], float] = {}
    names: dict[int, str] = {}
    code = None
    for key, org_id, target, org_name, study_code in rows:
        entries[(key, org_id)] = target
        code = study_code
        if org_id is not None:
            names[org_id] = org_name
    return TargetBook(study_id, entries, study_code=code, org_names=names)


def targets_for_study(session: Session, study_id: int) -> TargetBook:
    return _book(study_id, session.execute(_rows_stmt(study_id)))


def target_for(
    session: Session, *, study_id: int, kpi_key: str, org_id: int | None, default: float | None
) -> AppliedTarget:
    rows = session.execute(_rows_stmt(study_id).where(KpiTarget.kpi_key == kpi_key))
    return _book(study_id, rows).get(kpi_key, org_id, default)


def join_targets(
    stmt: Rows,
    *,
    study_id: ColumnElement[int] | Any,
    kpi_key: ColumnElement[str] | Any,
    org_id: ColumnElement[int] | Any,
) -> Rows:
    """`stmt` with two more columns, `org_target` and `study_target`: the study's targets
    for each row's organisation and study-wide, by two outer joins that each match at most
    one row (one target per study, key and organisation), so no row is repeated. For
    queries that must not grow by one (the digest's; `applied` then picks)."""
    own, wide = aliased(KpiTarget), aliased(KpiTarget)
    return (
        stmt.add_columns(own.target.label("org_target"), wide.target.label("study_target"))
        .outerjoin(
            own, and_(own.study_id == study_id, own.kpi_key == kpi_key, own.org_id == org_id)
        )
        .outerjoin(
            wide, and_(wide.study_id == study_id, wide.kpi_key == kpi_key, wide.org_id.is_(None))
        )
    )


# --- setting and clearing -------------------------------------------------------------


@dataclass(frozen=True)
class Targetable:
    """A key a study may give a target: a catalogue KPI's, or a computed measure's."""

    key: str
    label: str
    unit: str
    min_value: float | None
    max_value: float | None
    computed: bool


def targetable(session: Session, raw: str, *, retired_ok: bool = False) -> Targetable:
    """The catalogue KPI or computed measure `raw` names (a retired KPI takes no new
    target, though its old one may be cleared: `retired_ok`)."""
    key = normalise_key(raw)
    kpi = session.scalars(select(KpiDefinition).where(KpiDefinition.key == key)).first()
    if kpi is not None:
        if kpi.retired_at is not None and not retired_ok:
            raise UserError(
                msg(
                    "{} ({}) is retired: it takes no new values, so no target.",
                    kpi.label,
                    key_word(key),
                ),
                field="kpi",
            )
        return Targetable(key, kpi.label, kpi.unit, kpi.min_value, kpi.max_value, False)
    if key in COMPUTED_MEASURES:
        label, unit, _ = COMPUTED_MEASURES[key]
        low, high = natural_bounds(unit)
        return Targetable(key, label, unit, low, high, True)
    keys = list(session.scalars(select(KpiDefinition.key))) + list(COMPUTED_MEASURES)
    raise NotFound(
        msg("There is no KPI or computed measure `{}`.", raw),
        suggest_names(key, keys, own=True),
        field="kpi",
    )


def check_in_range(
    label: str, unit: str, low: float | None, high: float | None, raw: object
) -> float:
    """A target's value, read as KPI values are, inside the KPI's range."""
    reading = parse_value(raw, TARGET_HINT)
    if reading.percent and unit != "%":
        raise UserError(
            msg("`{}` is a percentage, but {} is not measured in percent.", reading.text, label),
            "Leave out the `%`.",
            field="target",
        )
    value = reading.value
    if (low is not None and value < low) or (high is not None and value > high):
        raise UserError(
            msg(
                "A target for {} ({}) must lie in its range, {}; you gave `{}`.",
                label,
                unit,
                range_text(low, high),
                reading.text,
            ),
            field="target",
        )
    return value


def _scope(
    session: Session, actor: Actor, study: str, org: str | None
) -> tuple[Study, Organization | None]:
    st = study_named_by(session, actor, study)
    require_target_setter(actor, st)
    if not org:
        return st, None
    o = org_by_name(session, org)
    if o.id not in study_org_ids(session, st):
        raise UserError(
            msg("{} is not on {}.", o.name, st.code),
            "Name one of the study's organisations.",
            field="org",
        )
    return st, o


def _existing(session: Session, study_id: int, key: str, org_id: int | None) -> KpiTarget | None:
    return session.scalars(
        select(KpiTarget).where(
            KpiTarget.study_id == study_id,
            KpiTarget.kpi_key == key,
            KpiTarget.org_id.is_(None) if org_id is None else KpiTarget.org_id == org_id,
        )
    ).first()


@dataclass(frozen=True)
class TargetChange:
    study: Study
    subject: Targetable
    org: Organization | None
    value: float | None  # None: cleared
    previous: float | None

    def describe(self) -> str:
        code, who = self.study.code, self.org.name if self.org else None
        if self.value is None:
            return applied(None, None, None).describe()
        if who:
            return applied(self.value, None, None, study_code=code, org_name=who).describe()
        return applied(None, self.value, None, study_code=code).describe()


def set_target(
    session: Session,
    actor: Actor,
    *,
    study: str,
    kpi: str,
    value: object,
    org: str | None = None,
) -> TargetChange:
    """Set (or change) a study's target for one KPI, study-wide or for one organisation."""
    st, o = _scope(session, actor, study, org)
    subject = targetable(session, kpi)
    target = check_in_range(
        subject.label, subject.unit, subject.min_value, subject.max_value, value
    )
    org_id = o.id if o else None
    row = _existing(session, st.id, subject.key, org_id)
    before = audit.snapshot(row, *FIELDS) if row is not None else None
    previous = row.target if row is not None else None
    if row is None:
        row = KpiTarget(study_id=st.id, kpi_key=subject.key, org_id=org_id)
        session.add(row)
    row.target, row.set_by = target, actor.label
    session.flush()
    audit.record(
        session,
        actor,
        SET,
        "kpi_target",
        row.id,
        study_id=st.id,
        before=before,
        after=audit.snapshot(row, *FIELDS),
    )
    return TargetChange(st, subject, o, target, previous)


def clear_target(
    session: Session, actor: Actor, *, study: str, kpi: str, org: str | None = None
) -> TargetChange:
    """Remove a study's target (the next one in line applies again)."""
    st, o = _scope(session, actor, study, org)
    key = normalise_key(kpi)
    row = _existing(session, st.id, key, o.id if o else None)
    if row is None:
        whose = msg("for {}", o.name) if o else msg("study-wide")
        raise UserError(
            msg("{} has no target for `{}` {} to clear.", st.code, key, whose),
            "`/cro kpi list STUDY` shows the study's targets.",
            field="kpi",
        )
    subject = targetable(session, key, retired_ok=True)
    before = audit.snapshot(row, *FIELDS)
    audit.record(
        session,
        actor,
        CLEAR,
        "kpi_target",
        row.id,
        study_id=st.id,
        before=before,
        after={**before, "target": None},
    )
    session.delete(row)
    session.flush()
    return TargetChange(st, subject, o, None, before["target"])
