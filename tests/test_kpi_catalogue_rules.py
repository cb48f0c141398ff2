"""The KPI catalogue's rules, without Slack: units, keys, ranges and targets of a
definition; who may report which kind of KPI; which target applies (study and
organisation over study over the catalogue's default) and that a study's targets load in
one query. Every refused input leaves the database as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crobot.services import kpi_admin, kpi_targets, kpis
from crobot.services.actor import SYSTEM, Actor
from crobot.services.computed_keys import COMPUTED_KEYS, COMPUTED_MEASURES
from crobot.services.errors import Forbidden, NotFound, UserError
from crobot.services.kpi_catalog import SHIPPED, normalise_key
from crobot.services.kpi_targets import AppliedTarget, TargetBook, applied, target_for
from crobot.services.kpi_units import ALLOWED, parse_unit
from crobot.services.lookup import reportable_kpis
from crobot.services.permissions import reportable_kinds
from crobot.services.visibility import Audience, Scope
from crobot.storage.models import Direction, KpiDefinition, KpiKind, KpiTarget, Role
from tests.conftest import APEX_PM, APPROVER, LAB_PM, SPONSOR, TODAY, World
from tests.digest_helpers import count_queries
from tests.test_services import rejected

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _define(world: World, actor: Actor = SYSTEM, **data: object) -> KpiDefinition:
    fields: dict[str, object] = {
        "key": "otd_kits",
        "label": "Kits delivered on time",
        "unit": "%",
        "direction": "up",
    }
    fields.update(data)
    with world.db.write() as s:
        return kpi_admin.define(s, actor, **fields)  # type: ignore[arg-type]


# --- units and the shipped catalogue ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored", "family"),
    [
        ("%", "%", "percent"),
        ("percent", "%", "percent"),
        ("Days", "days", "time"),
        ("patients", "patients", "count"),
        ("EUR", "EUR", "money"),
        ("usd", "USD", "money"),
        ("kEUR", "kEUR", "money"),
        ("MUSD", "MUSD", "money"),
        ("score", "score", "score"),
    ],
)
def test_units_are_a_closed_set_spelt_one_way(raw: str, stored: str, family: str) -> None:
    unit = parse_unit(raw)
    assert (unit.text, unit.family) == (stored, family)


@pytest.mark.parametrize("raw", ["furlongs", "dyas", "kXYZ", "KEUR", "€", ""])
def test_an_unknown_unit_is_refused_naming_the_units(raw: str) -> None:
    with pytest.raises(UserError) as err:
        parse_unit(raw)
    assert "is not a unit crobot knows" in err.value.message
    assert err.value.hint == "Units: " + ALLOWED + "."
    for named in ("`%`", "`days`", "`patients`", "`EUR`", "`kEUR`", "`score`"):
        assert named in str(err.value)


def test_every_shipped_definition_keeps_the_catalogues_own_rules() -> None:
    """What seeding adds must be what `crobot kpi define` would accept."""
    kinds = {spec.kind for spec in SHIPPED}
    assert {KpiKind.CRO, KpiKind.CMO, KpiKind.LAB, KpiKind.ANY, KpiKind.SPONSOR} <= kinds
    labels = [spec.label.lower() for spec in SHIPPED]
    assert len(set(labels)) == len(labels)
    for spec in SHIPPED:
        assert kpi_admin.check_key(spec.key) == spec.key
        assert parse_unit(spec.unit).text == spec.unit
        assert spec.min_value is not None and spec.max_value is not None
        assert spec.min_value < spec.max_value, spec.key
        if spec.target is not None:
            assert spec.min_value <= spec.target <= spec.max_value, spec.key
    shipped = {spec.key for spec in SHIPPED}
    for key in ("otif_delivery", "right_first_time", "batch_release_days", "open_capas"):
        assert key in shipped
    for key in ("staff_turnover", "training_compliance", "data_security_compliance"):
        assert key in shipped
    assert "resource_utilisation" in shipped
    # Nobody rates themself: the ratings of a vendor are the sponsor's to enter.
    assert {s.key for s in SHIPPED if s.kind == KpiKind.SPONSOR} == {
        "supplier_performance",
        "customer_satisfaction",
    }


def test_computed_measures_have_units_and_directions_the_catalogue_knows() -> None:
    assert set(COMPUTED_KEYS) == set(COMPUTED_MEASURES)
    shipped = {spec.key for spec in SHIPPED}
    for key, (label, unit, direction) in COMPUTED_MEASURES.items():
        assert key not in shipped and normalise_key(key) == key
        assert label and parse_unit(unit).text == unit and Direction(direction)


# --- defining ----------------------------------------------------------------------------


def test_define_stores_the_unit_as_spelt_and_the_units_natural_range(world: World) -> None:
    kpi = _define(world, unit="Percent", target="97,5", kind="cmo", aggregation="average")
    assert (kpi.unit, kpi.min_value, kpi.max_value, kpi.target) == ("%", 0, 100, 97.5)
    assert (kpi.kind, kpi.integer, kpi.retired_at) == (KpiKind.CMO, False, None)
    counted = _define(world, key="late_kits", label="Late kits", unit="count", direction="down")
    assert (counted.min_value, counted.max_value, counted.kind) == (0, 1_000_000, KpiKind.ANY)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"unit": "furlongs"}, "`furlongs` is not a unit crobot knows"),
        ({"unit": "days", "min": "10", "max": "5"}, "minimum (10) must be below the maximum (5)"),
        ({"target": "120"}, "target (120) must lie in the KPI's range, from 0 to 100"),
        ({"unit": "score", "max": "5"}, "A score needs its scale"),
        ({"key": "enrollment"}, "There is already a KPI `enrollment`"),
        ({"key": "OTD kits!"}, "cannot be a KPI key"),
        ({"key": "9lives"}, "cannot be a KPI key"),
        ({"key": "x" * 41}, "cannot be a KPI key"),
        ({"key": "enrolment"}, "another name for `enrollment`"),
        ({"key": "milestones_on_time"}, "a measure crobot computes"),
        ({"label": "ENROLMENT"}, "already `enrollment`'s"),
        ({"direction": "sideways"}, "`direction`"),
        ({"kind": "hospital"}, "`kind`"),
        ({"target": "lots"}, "not a number"),
    ],
)
def test_bad_definitions_are_refused_and_store_nothing(
    world: World, data: dict[str, object], words: str
) -> None:
    fields: dict[str, object] = {
        "key": "otd_kits",
        "label": "Kits delivered on time",
        "unit": "%",
        "direction": "up",
        **data,
    }
    message = rejected(world, UserError, lambda s: kpi_admin.define(s, SYSTEM, **fields))  # type: ignore[arg-type]
    assert words in message, message


@pytest.mark.parametrize("user", [APPROVER, SPONSOR, APEX_PM, LAB_PM])
def test_no_slack_user_defines_changes_or_retires_a_kpi(world: World, user: str) -> None:
    """Even a sponsor approver: the catalogue is the operator's, on the server."""
    actor = world.actor(user)
    for change in (
        lambda s: kpi_admin.define(
            s, actor, key="otd_kits", label="Kits", unit="%", direction="up"
        ),
        lambda s: kpi_admin.update(s, actor, key="enrollment", target="5"),
        lambda s: kpi_admin.retire(s, actor, key="enrollment", now=NOW),
    ):
        assert "kept by the sponsor's crobot operator" in rejected(world, Forbidden, change)


def test_the_previous_retired_key_is_never_reused(world: World) -> None:
    _define(world)
    with world.db.write() as s:
        kpi_admin.retire(s, SYSTEM, key="otd_kits", now=NOW)
    assert "retired: keys are never reused" in rejected(
        world,
        UserError,
        lambda s: kpi_admin.define(s, SYSTEM, key="otd_kits", label="X", unit="%", direction="up"),
    )


# --- updating ----------------------------------------------------------------------------


def _report(world: World, user: str, kpi: str, value: float) -> None:
    with world.db.write() as s:
        kpis.report(s, world.actor(user), today=TODAY, study="ONC-301", kpi=kpi, value=value)


def test_update_changes_only_what_is_given(world: World) -> None:
    with world.db.write() as s:
        kpi = kpi_admin.update(s, SYSTEM, key="query_aging", target="10", kind="lab")
    assert (kpi.target, kpi.kind, kpi.label, kpi.unit) == (10, KpiKind.LAB, "Query aging", "days")
    assert (kpi.min_value, kpi.max_value, kpi.direction) == (0, 3650, Direction.DOWN)
    with world.db.write() as s:
        kpi = kpi_admin.update(s, SYSTEM, key="query_aging", no_target=True)
    assert kpi.target is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "Nothing to change"),
        ({"target": "14"}, "already reads so"),
        ({"max": "10", "target": "5"}, "would leave some out"),  # 12.5 is on record
        ({"unit": "hours"}, "its unit cannot change"),
        ({"whole": True}, "cannot become whole"),
        ({"min": "4000"}, "minimum (4000) must be below the maximum (3650)"),
        ({"target": "4000"}, "must lie in the KPI's range"),
        ({"target": "5", "no_target": True}, "not both"),
        ({"label": "Enrolment"}, "already `enrollment`'s"),
    ],
)
def test_bad_updates_are_refused_and_store_nothing(
    world: World, data: dict[str, object], words: str
) -> None:
    _report(world, APEX_PM, "query_aging", 12.5)
    message = rejected(
        world,
        UserError,
        lambda s: kpi_admin.update(s, SYSTEM, key="query_aging", **data),
    )
    assert words in message, message


def test_a_range_that_would_leave_out_a_studys_target_is_refused(world: World) -> None:
    with world.db.write() as s:
        kpi_targets.set_target(s, SYSTEM, study="ONC-301", kpi="query_aging", value=30)
    message = rejected(
        world, UserError, lambda s: kpi_admin.update(s, SYSTEM, key="query_aging", max="20")
    )
    assert "would leave out the targets of ONC-301" in message


# --- retiring ----------------------------------------------------------------------------


def test_a_retired_kpi_keeps_its_history_and_takes_no_new_value(world: World) -> None:
    _report(world, APEX_PM, "query_aging", 9)
    with world.db.write() as s:
        kpi_admin.retire(s, SYSTEM, key="query_aging", now=NOW)
    message = rejected(
        world,
        UserError,
        lambda s: kpis.report(
            s, world.actor(APEX_PM), today=TODAY, study="ONC-301", kpi="query_aging", value=8
        ),
    )
    assert "was retired on 2026-11-25" in message and "takes no new values" in message
    assert "already retired" in rejected(
        world, UserError, lambda s: kpi_admin.retire(s, SYSTEM, key="query_aging", now=NOW)
    )
    assert "is retired" in rejected(
        world,
        UserError,
        lambda s: kpi_targets.set_target(s, SYSTEM, study="ONC-301", kpi="query_aging", value=5),
    )
    with world.db.read() as s:
        kpi = s.scalars(select(KpiDefinition).where(KpiDefinition.key == "query_aging")).one()
        history = kpis.series(s, _sponsor(world), kpi)
        assert [p.value for p in history] == [9]
        assert "query_aging" not in {d.key for d in reportable_kpis(s, world.actor(APPROVER))}


def _sponsor(world: World) -> Audience:
    return Audience(world.study_id, Scope.SPONSOR, None, world.sponsor_id)


# --- kinds: who reports what --------------------------------------------------------------


def test_reportable_kinds_follow_the_organisations_kind(world: World) -> None:
    world.add_person("T1", "UOTHER", "Helix Pharma", Role.SPONSOR_MEMBER.value)
    assert reportable_kinds(SYSTEM) is None
    assert reportable_kinds(world.actor(APPROVER)) is None
    assert reportable_kinds(world.actor("UOTHER")) is None
    assert reportable_kinds(world.actor(APEX_PM)) == frozenset({KpiKind.CRO, KpiKind.ANY})
    assert reportable_kinds(world.actor(LAB_PM)) == frozenset({KpiKind.LAB, KpiKind.ANY})
    assert reportable_kinds(world.actor("UNOBODY")) == frozenset()
    with world.db.read() as s:
        lab = {d.key for d in reportable_kpis(s, world.actor(LAB_PM))}
        apex = {d.key for d in reportable_kpis(s, world.actor(APEX_PM))}
    assert "sample_turnaround" in lab and "open_capas" in lab and "query_aging" in lab
    assert not lab & {"otif_delivery", "enrollment", "staff_turnover", "supplier_performance"}
    assert {"enrollment", "staff_turnover", "open_capas"} <= apex
    assert not apex & {"otif_delivery", "sample_turnaround", "customer_satisfaction"}


def test_a_vendor_reporting_another_kinds_kpi_is_told_what_it_reports(world: World) -> None:
    message = rejected(
        world,
        Forbidden,
        lambda s: kpis.report(
            s, world.actor(LAB_PM), today=TODAY, study="ONC-301", kpi="otif_delivery", value=90
        ),
    )
    assert "CentraLab does not report On-time-in-full delivery (`otif_delivery`)" in message
    assert "a CMO KPI" in message and "`sample_turnaround`" in message
    assert "`enrollment`" not in message
    # A vendor never scores itself; the sponsor rates it.
    assert "the sponsor's rating of a vendor" in rejected(
        world,
        Forbidden,
        lambda s: kpis.report(
            s,
            world.actor(APEX_PM),
            today=TODAY,
            study="ONC-301",
            kpi="supplier_performance",
            value=5,
        ),
    )
    with world.db.write() as s:
        rated = kpis.report(
            s,
            world.actor(APPROVER),
            today=TODAY,
            study="ONC-301",
            kpi="supplier_performance",
            value=4.5,
            org="Apex CRO",
        )
    assert rated.update.org_id == world.apex_id


# --- which target applies -----------------------------------------------------------------


def test_the_precedence_and_how_each_target_is_described() -> None:
    assert applied(80, 70, 60, study_code="ONC-301", org_name="Apex CRO") == AppliedTarget(
        80, "study+org", "ONC-301", "Apex CRO"
    )
    assert applied(80, 70, 60, study_code="ONC-301", org_name="Apex CRO").describe() == (
        "target 80 (ONC-301, Apex CRO)"
    )
    assert applied(None, 70, 60).describe() == "target 70 (study)"
    assert applied(None, None, 60).describe() == "target 60 (default)"
    assert applied(None, None, None) == AppliedTarget(None, "none")
    assert applied(None, None, None).describe() == "no target"
    assert applied(None, None, 20).met_by(20, Direction.UP) is True
    assert applied(None, None, 20).met_by(21, Direction.DOWN) is False
    assert applied(None, None, None).met_by(1, Direction.UP) is None


def test_a_studys_targets_load_in_one_query_and_apply_in_order(world: World) -> None:
    with world.db.write() as s:
        for kpi, value, org in (
            ("enrollment", 30, None),
            ("enrollment", 40, "Apex CRO"),
            ("milestones_on_time", 90, None),  # a computed measure takes a target too
        ):
            kpi_targets.set_target(s, SYSTEM, study="ONC-301", kpi=kpi, value=value, org=org)
    with count_queries(world.db) as statements, world.db.read() as s:
        book = kpi_targets.targets_for_study(s, world.study_id)
    assert len([q for q in statements if q.startswith("SELECT")]) == 1 and len(book) == 3
    assert book.get("enrollment", world.apex_id, 20).describe() == "target 40 (ONC-301, Apex CRO)"
    assert book.get("enrollment", world.lab_id, 20) == AppliedTarget(30, "study", "ONC-301")
    assert book.get("enrollment", None, 20).source == "study"
    assert book.get("query_aging", world.apex_id, 14) == AppliedTarget(14, "default")
    assert book.get("cost_of_quality", world.apex_id, None) == AppliedTarget(None, "none")
    assert book.get("milestones_on_time", world.lab_id, None).value == 90
    with world.db.read() as s:
        one = target_for(
            s, study_id=world.study_id, kpi_key="enrollment", org_id=world.apex_id, default=20
        )
    assert one == book.get("enrollment", world.apex_id, 20)
    assert isinstance(TargetBook(1, {}).get("x", None, None), AppliedTarget)


@pytest.mark.parametrize(
    ("user", "data", "error", "words"),
    [
        (APEX_PM, {"kpi": "enrollment", "value": 30}, Forbidden, "Only sponsor approvers"),
        (SPONSOR, {"kpi": "enrollment", "value": 30}, Forbidden, "Only sponsor approvers"),
        (APPROVER, {"kpi": "enrollment", "value": 100_001}, UserError, "must lie in its range"),
        (APPROVER, {"kpi": "screen_failure_rate", "value": "-1"}, UserError, "from 0 to 100"),
        (APPROVER, {"kpi": "milestones_on_time", "value": 101}, UserError, "from 0 to 100"),
        (APPROVER, {"kpi": "query_aging", "value": "5%"}, UserError, "not measured in percent"),
        (APPROVER, {"kpi": "no_such_kpi", "value": 5}, NotFound, "no KPI or computed measure"),
        (
            APPROVER,
            {"kpi": "enrollment", "value": 5, "org": "Nowhere Ltd"},
            NotFound,
            "no organisation",
        ),
    ],
)
def test_bad_targets_are_refused_and_store_nothing(
    world: World, user: str, data: dict[str, object], error: type[Exception], words: str
) -> None:
    actor = world.actor(user)
    message = rejected(
        world,
        error,
        lambda s: kpi_targets.set_target(s, actor, study="ONC-301", **data),  # type: ignore[arg-type]
    )
    assert words in message, message


def test_one_target_per_study_kpi_and_organisation_set_again_and_cleared(world: World) -> None:
    approver = world.actor(APPROVER)
    with world.db.write() as s:
        first = kpi_targets.set_target(s, approver, study="ONC-301", kpi="enrolment", value=25)
        again = kpi_targets.set_target(s, approver, study="ONC-301", kpi="enrollment", value=26)
        kpi_targets.set_target(
            s, approver, study="ONC-301", kpi="enrollment", value=50, org="Apex CRO"
        )
    assert (first.previous, again.previous, again.value) == (None, 25, 26)
    with world.db.read() as s:
        rows = s.scalars(select(KpiTarget).order_by(KpiTarget.id)).all()
    assert [(r.kpi_key, r.org_id, r.target) for r in rows] == [
        ("enrollment", None, 26),
        ("enrollment", world.apex_id, 50),
    ]
    with world.db.write() as s:
        cleared = kpi_targets.clear_target(
            s, approver, study="ONC-301", kpi="enrollment", org="Apex CRO"
        )
    assert (cleared.value, cleared.previous) == (None, 50)
    assert "has no target for `enrollment` for Apex CRO" in rejected(
        world,
        UserError,
        lambda s: kpi_targets.clear_target(
            s, approver, study="ONC-301", kpi="enrollment", org="Apex CRO"
        ),
    )
