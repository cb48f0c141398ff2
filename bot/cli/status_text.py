"""Plain-text rendering of a study status for the terminal."""

from __future__ import annotations

from crobot.services.kpi_values import shown
from crobot.services.kpis import pending_mark
from crobot.services.status import StudyStatus


def render_status(st: StudyStatus) -> str:
    s = st.study
    lines = [
        f"{s.code} — {s.title}  (phase {s.phase or '?'}, view: {st.audience.label}, "
        f"as of {st.today.isoformat()})",
        "",
    ]
    lines.append("Milestones")
    if st.late_milestones:
        for m in st.late_milestones:
            when = m.forecast_date or m.planned_date
            lines.append(
                f"  ! #{m.id} {m.name} [{_org(m.org)}] planned {m.planned_date}, "
                f"now {when} ({m.status.value})"
            )
    for m in st.next_milestones:
        lines.append(
            f"  · #{m.id} {m.name} [{_org(m.org)}] due {m.forecast_date or m.planned_date}"
        )
    if not st.late_milestones and not st.next_milestones:
        lines.append("  nothing due in the next 30 days")
    lines += ["", f"Actions: {st.open_actions} open, {st.overdue_count} overdue"]
    for a in st.overdue_actions:
        lines.append(f"  ! #{a.id} {a.title} — <@{a.owner_user_id}> was due {a.due_date}")
    if st.overdue_count > len(st.overdue_actions):
        lines.append(f"  … and {st.overdue_count - len(st.overdue_actions)} more")
    lines += ["", "KPIs (latest vs previous period)"]
    for kpi, trends in st.kpis:
        for t in trends:
            target = f" {t.target.describe()}" if t.target.value is not None else ""
            mark = {True: "on target", False: "off target", None: ""}[t.on_target]
            change = f" {t.arrow} {t.change:+g}" if t.change else f" {t.arrow}"
            lines.append(
                f"  {kpi.label:<24} {t.org_name:<14} {shown(t.latest.value):>8} {kpi.unit}"
                f"{pending_mark(t.latest)}{change}{target} {mark}  [{t.latest.period_label}]"
            )
    if not st.kpis:
        lines.append("  no KPI values yet")
    lines += ["", f"Pending approvals: {st.pending_count}"]
    for ap in st.pending_approvals:
        site = ap.summary.get("site")
        what = (
            ap.summary.get("label")
            or ap.summary.get("milestone")
            or (f"site {site} enrolment" if site else ap.subject_type.value)
        )
        lines.append(f"  ? #{ap.id} {what}: requested by {ap.requested_by}")
    if st.pending_count > len(st.pending_approvals):
        lines.append(f"  … and {st.pending_count - len(st.pending_approvals)} more")
    if st.open_breaches:
        lines += ["", f"Open QTL breaches: {len(st.open_breaches)}"]
        for b in st.open_breaches:
            owner = f"<@{b.owner_user_id}>" if b.owner_user_id else "no owner"
            lines.append(
                f"  ! #{b.id} {b.kpi} [{b.org}] {b.period}: {b.observed} (limit {b.limit}), "
                f"evaluation by {b.due} — {owner}"
            )
    return "\n".join(lines)


def _org(org: object | None) -> str:
    return getattr(org, "name", None) or "study"
