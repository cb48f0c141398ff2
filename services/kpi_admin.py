"""The sponsor's KPI catalogue: define, update and retire definitions.

Only the operator (the CLI) changes the catalogue (services/permissions.py
`require_catalogue_editor`). Every input is checked before anything is written, and every
change is audited (`kpi.define`, `kpi.update`, `kpi.retire`):

- a key is 2-40 lower-case letters, digits and `_`, starting with a letter, never one in
  use (keys are never reused, retired or not: history keeps its meaning), an alias
  (`enrolment`) or a computed measure's (services/computed_keys.py);
- a label is unique, so that charts and digests name one KPI by it;
- the unit is one of services/kpi_units.py's closed set; a `score` gives its scale;
- the range: `min` below `max`, the unit's natural range when none is given; the default
  target lies inside it;
- an update that changes the range or `--whole` must keep every reported value and every
  study's target valid; the unit of a KPI with values does not change (those values were
  measured in the old one: define a new KPI and retire this one).

A retired KPI keeps its history (show, trend, exports read it) and takes no new values
(services/kpis.py `report`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.computed_keys import COMPUTED_MEASURES
from crobot.services.errors import NotFound, UserError, msg, validate
from crobot.services.kpi_catalog import ALIASES, normalise_key
from crobot.services.kpi_units import Unit, parse_unit
from crobot.services.kpi_values import parse_value, range_text, shown
from crobot.services.lookup import suggest_names
from crobot.services.permissions import require_catalogue_editor
from crobot.storage.models import (
    Aggregation,
    ApprovalState,
    Direction,
    KpiDefinition,
    KpiKind,
    KpiTarget,
    KpiUpdate,
    Study,
)

DEFINE_HINT = (
    'Write it as `crobot kpi define KEY --label "…" --unit UNIT --direction up|down '
    "[--target N] [--min N --max N] [--whole] [--kind cro|cmo|lab|any|sponsor] "
    '[--aggregation latest|sum|average] [--description "…"]`.'
)
UPDATE_HINT = "Write it as `crobot kpi update KEY` with the options to change (`--label`, …)."
DEFINE, UPDATE, RETIRE = "kpi.define", "kpi.update", "kpi.retire"
FIELDS = (
    "key",
    "label",
    "unit",
    "direction",
    "target",
    "aggregation",
    "min_value",
    "max_value",
    "integer",
    "kind",
    "description",
    "retired_at",
)
_KEY = re.compile(r"^[a-z][a-z0-9_]{1,39}$", re.ASCII)
KEY_RULE = (
    "A key is 2-40 lower-case letters, digits and `_`, starting with a letter (`otif_delivery`)."
)

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class Changes(BaseModel):
    """What `define` and `update` take; absent (None) means "not given"."""

    model_config = ConfigDict(extra="forbid")
    label: Label | None = None
    unit: str | None = None
    direction: Direction | None = None
    target: str | float | None = None
    min: str | float | None = None
    max: str | float | None = None
    whole: bool | None = None
    kind: KpiKind | None = None
    aggregation: Aggregation | None = None
    description: Description | None = None
    no_target: bool = False  # update: the KPI has no default target any more


def check_key(raw: str) -> str:
    key = raw.strip().lower().replace("-", "_")
    if not _KEY.match(key):
        raise UserError(msg("`{}` cannot be a KPI key.", raw), KEY_RULE, field="key")
    if key in ALIASES:
        raise UserError(
            msg("`{}` is another name for `{}`: pick a key of its own.", key, ALIASES[key]),
            KEY_RULE,
            field="key",
        )
    if key in COMPUTED_MEASURES:
        raise UserError(
            msg("`{}` is a measure crobot computes: pick another key.", key), field="key"
        )
    return key


def _number(raw: str | float | None, hint: str) -> float | None:
    """A bound or target, read as KPI values are (`services.kpi_values`)."""
    return None if raw is None else parse_value(raw, hint).value


def definition(session: Session, raw: str) -> KpiDefinition:
    """A definition by key (retired ones too: they are still the catalogue's)."""
    key = normalise_key(raw)
    kpi = session.scalars(select(KpiDefinition).where(KpiDefinition.key == key)).first()
    if kpi is None:
        keys = list(session.scalars(select(KpiDefinition.key)))
        raise NotFound(
            msg("There is no KPI `{}`.", raw), suggest_names(key, keys, own=True), field="kpi"
        )
    return kpi


@dataclass(frozen=True)
class _Shape:
    """A definition's unit, range and target as they would be after the change."""

    unit: Unit
    low: float | None
    high: float | None
    target: float | None
    whole: bool


def _shape(c: Changes, hint: str, current: KpiDefinition | None = None) -> _Shape:
    unit = parse_unit(c.unit) if c.unit is not None else parse_unit(current.unit if current else "")
    low = _number(c.min, hint)
    high = _number(c.max, hint)
    if current is None:
        if unit.family == "score" and (low is None or high is None):
            raise UserError(
                "A score needs its scale: give `--min` and `--max` (e.g. `--min 0 --max 5`).",
                hint,
                field="max",
            )
        low = unit.low if low is None else low
        high = unit.high if high is None else high
    else:
        low = current.min_value if c.min is None else low
        high = current.max_value if c.max is None else high
    if low is not None and high is not None and low >= high:
        raise UserError(
            msg("The minimum ({}) must be below the maximum ({}).", shown(low), shown(high)),
            hint,
            field="min",
        )
    if c.no_target:
        target = None
    elif c.target is not None:
        target = _number(c.target, hint)
    else:
        target = current.target if current else None
    if target is not None and (
        (low is not None and target < low) or (high is not None and target > high)
    ):
        raise UserError(
            msg(
                "The target ({}) must lie in the KPI's range, {}.",
                shown(target),
                range_text(low, high),
            ),
            hint,
            field="target",
        )
    whole = c.whole if c.whole is not None else (current.integer if current else False)
    return _Shape(unit, low, high, target, whole)


def _label_free(session: Session, label: str, key: str | None) -> None:
    taken = session.scalars(
        select(KpiDefinition.key).where(
            func.lower(KpiDefinition.label) == label.lower(),
            *(() if key is None else (KpiDefinition.key != key,)),
        )
    ).first()
    if taken is not None:
        raise UserError(
            msg("The label {} is already `{}`'s: give this KPI a label of its own.", label, taken),
            field="label",
        )


def define(session: Session, actor: Actor, *, key: str, **data: Any) -> KpiDefinition:
    require_catalogue_editor(actor)
    k = check_key(key)
    c = validate(Changes, data, DEFINE_HINT)
    if c.label is None or c.unit is None or c.direction is None:
        missing = [n for n in ("label", "unit", "direction") if getattr(c, n) is None]
        raise UserError(f"A new KPI needs {', '.join('--' + m for m in missing)}.", DEFINE_HINT)
    existing = session.scalars(select(KpiDefinition).where(KpiDefinition.key == k)).first()
    if existing is not None:
        state = " (retired: keys are never reused)" if existing.retired_at else ""
        raise UserError(
            msg("There is already a KPI `{}`{}.", k, state),
            "Pick another key, or change it with `crobot kpi update`.",
            field="key",
        )
    shape = _shape(c, DEFINE_HINT)
    _label_free(session, c.label, None)
    kpi = KpiDefinition(
        key=k,
        label=c.label,
        unit=shape.unit.text,
        direction=c.direction,
        target=shape.target,
        aggregation=c.aggregation or Aggregation.LATEST,
        min_value=shape.low,
        max_value=shape.high,
        integer=shape.whole,
        kind=c.kind or KpiKind.ANY,
        description=c.description or "",
    )
    session.add(kpi)
    session.flush()
    audit.record(
        session, actor, DEFINE, "kpi_definition", kpi.id, after=audit.snapshot(kpi, *FIELDS)
    )
    return kpi


def update(session: Session, actor: Actor, *, key: str, **data: Any) -> KpiDefinition:
    """Change the options given (None: not given); the rest stays as it is."""
    require_catalogue_editor(actor)
    c = validate(Changes, data, UPDATE_HINT)
    given = [n for n in Changes.model_fields if n != "no_target" and getattr(c, n) is not None]
    if not given and not c.no_target:
        raise UserError("Nothing to change.", UPDATE_HINT)
    if c.no_target and c.target is not None:
        raise UserError("Give `--target N` or `--no-target`, not both.", UPDATE_HINT)
    kpi = definition(session, key)
    shape = _shape(c, UPDATE_HINT, kpi)
    if c.label is not None:
        _label_free(session, c.label, kpi.key)
    _history_fits(session, kpi, shape)
    before = audit.snapshot(kpi, *FIELDS)
    new = {
        "label": c.label if c.label is not None else kpi.label,
        "unit": shape.unit.text,
        "direction": c.direction or kpi.direction,
        "target": shape.target,
        "aggregation": c.aggregation or kpi.aggregation,
        "min_value": shape.low,
        "max_value": shape.high,
        "integer": shape.whole,
        "kind": c.kind or kpi.kind,
        "description": c.description if c.description is not None else kpi.description,
    }
    if all(getattr(kpi, name) == value for name, value in new.items()):
        raise UserError(msg("`{}` already reads so: nothing changed.", kpi.key), UPDATE_HINT)
    for name, value in new.items():
        setattr(kpi, name, value)
    session.flush()
    after = audit.snapshot(kpi, *FIELDS)
    audit.record(session, actor, UPDATE, "kpi_definition", kpi.id, before=before, after=after)
    return kpi


def _history_fits(session: Session, kpi: KpiDefinition, shape: _Shape) -> None:
    """The values already reported, and the studies' targets, stay valid."""
    current = (KpiUpdate.kpi_id == kpi.id, KpiUpdate.approval_state != ApprovalState.REJECTED)
    low, high, count, fractional = session.execute(
        select(
            func.min(KpiUpdate.value),
            func.max(KpiUpdate.value),
            func.count(),
            func.sum(func.abs(KpiUpdate.value - func.round(KpiUpdate.value))),
        ).where(*current)
    ).one()
    if count and shape.unit.text != kpi.unit:
        raise UserError(
            msg("{} values of `{}` are in {}: its unit cannot change.", count, kpi.key, kpi.unit),
            "Define a new KPI in the new unit and retire this one (`crobot kpi retire`).",
            field="unit",
        )
    outside = _outside(shape, [v for v in (low, high) if v is not None])
    if count and outside:
        raise UserError(
            msg(
                "Reported values of `{}` run from {} to {}: the range {} would leave some out.",
                kpi.key,
                shown(low),
                shown(high),
                range_text(shape.low, shape.high),
            ),
            field="min",
        )
    if shape.whole and not kpi.integer and fractional:
        raise UserError(
            msg("`{}` has values that are not whole numbers: it cannot become whole.", kpi.key),
            field="whole",
        )
    targets = session.execute(
        select(Study.code, KpiTarget.target)
        .join(Study, Study.id == KpiTarget.study_id)
        .where(KpiTarget.kpi_key == kpi.key)
    ).all()
    bad = sorted({code for code, t in targets if _outside(shape, [t])})
    if bad:
        raise UserError(
            msg(
                "The range {} would leave out the targets of {}.",
                range_text(shape.low, shape.high),
                ", ".join(bad),
            ),
            "Change those targets first (`crobot kpi target STUDY KPI N`).",
            field="min",
        )


def _outside(shape: _Shape, values: Sequence[float]) -> bool:
    return any(
        (shape.low is not None and v < shape.low) or (shape.high is not None and v > shape.high)
        for v in values
    )


def retire(session: Session, actor: Actor, *, key: str, now: datetime) -> KpiDefinition:
    require_catalogue_editor(actor)
    kpi = definition(session, key)
    if kpi.retired_at is not None:
        raise UserError(
            msg("`{}` was already retired on {}.", kpi.key, kpi.retired_at.date().isoformat())
        )
    before = audit.snapshot(kpi, "retired_at")
    kpi.retired_at = now
    session.flush()
    audit.record(
        session,
        actor,
        RETIRE,
        "kpi_definition",
        kpi.id,
        before=before,
        after=audit.snapshot(kpi, "retired_at"),
    )
    return kpi
