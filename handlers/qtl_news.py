"""The messages of the QTL outbox rows (services/qtl.py writes them; digests/delivery.py
sends them): a breach opened (in the sponsor channel with Assign owner / Evaluate), its
closure with the closer's manifest, and a warning threshold crossed."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from crobot.handlers import blockkit as bk
from crobot.handlers.blockkit import Block, Mrkdwn, fmt
from crobot.handlers.manifest import manifest_text
from crobot.services import qtl
from crobot.services.approval_log import person_of
from crobot.services.kpi_values import shown
from crobot.services.lookup import sponsor_channels
from crobot.services.runtime import Runtime
from crobot.storage.models import KpiUpdate, QtlBreach, QualityLimit

METADATA_EVENT = "crobot_qtl"
ASSIGN = "qtl_assign"
EVALUATE = "qtl_evaluate"
ACTIONS_BLOCK = "qtl_actions"


def open_line(b: qtl.OpenBreach, today: date | None = None) -> Mrkdwn:
    """One open breach in a list (status, Home, the sponsor digest)."""
    owner = bk.mention(b.owner_team_id, b.owner_user_id) if b.owner_user_id else "no owner"
    late = " *overdue*" if today is not None and b.due < today else ""
    return fmt(
        ":rotating_light: #{} *{}* {} · {}: {} (limit {}) · evaluation by {}{} · {}",
        b.id,
        b.kpi,
        b.org,
        b.period,
        b.observed,
        b.limit,
        b.due.isoformat(),
        Mrkdwn(late),
        owner,
    )


def breach_text(breach: QtlBreach) -> Mrkdwn:
    return fmt(
        "*QTL breach — {}* (#{})\n*{}* for {} in {}: *{}* {} (limit {}).",
        breach.study.code,
        breach.id,
        breach.kpi.label,
        breach.org.name,
        breach.period_label,
        shown(breach.observed),
        breach.kpi.unit,
        qtl.limit_text(breach.bound, breach.limit_value),
    )


def breach_blocks(breach: QtlBreach, *, buttons: bool) -> list[Block]:
    team, user = person_of(breach.submitted_by)
    lines = fmt(
        "Detected {} UTC · value submitted by {} · evaluation due {}",
        f"{breach.detected_at:%Y-%m-%d %H:%M}",
        bk.mention(team, user),
        breach.evaluation_due.isoformat(),
    )
    blocks: list[Block] = [bk.section(breach_text(breach), block_id="qtl_summary")]
    if breach.limit.rationale:
        blocks.append(bk.context(fmt("Rationale: {}", breach.limit.rationale)))
    blocks.append(bk.context(lines))
    if breach.owner_user_id:
        blocks.append(
            bk.context(fmt("Evaluation owner: {}", bk.mention(None, breach.owner_user_id)))
        )
    if buttons:
        blocks.append(
            bk.actions(
                bk.button("Assign owner", ASSIGN, str(breach.id)),
                bk.button("Evaluate", EVALUATE, str(breach.id), style="primary"),
                block_id=ACTIONS_BLOCK,
            )
        )
    return blocks


def closed_blocks(breach: QtlBreach) -> list[Block]:
    systemic = "yes" if breach.systemic else "no"
    needed = "yes" if breach.action_needed else "no"
    body = fmt(
        ":white_check_mark: *QTL breach #{} closed — {}*: {} for {} in {}\n"
        "*Systemic:* {} · *Action needed:* {}\n*Root cause:* {}\n*Impact:* {}\n*Remedial:* {}",
        breach.id,
        breach.study.code,
        breach.kpi.label,
        breach.org.name,
        breach.period_label,
        systemic,
        needed,
        breach.root_cause or "—",
        breach.impact or "—",
        breach.remedial or "—",
    )
    blocks = [bk.section(body, block_id="qtl_closed")]
    m = qtl.manifest(breach)
    if m is not None:  # worded as an approval's decision (21 CFR 11.50)
        blocks.append(bk.context(manifest_text(m), block_id="qtl_signature"))
    return blocks


def _breach_payload(s: Session, breach_id: int, key: str) -> dict[str, Any] | None:
    breach = s.get(QtlBreach, breach_id)
    what, _, channel = key.partition(":")
    if breach is None or not channel:
        return None
    if what == "closed":
        text = fmt("QTL breach #{} closed — {}: {}", breach.id, breach.study.code, breach.kpi.label)
        return {"channel": channel, **bk.message(text, closed_blocks(breach))}
    # The buttons are the sponsor's: a vendor's copy only tells.
    buttons = channel in sponsor_channels(s, breach.study_id)
    text = fmt(
        "QTL breach — {}: {} for {} in {} is {} (limit {})",
        breach.study.code,
        breach.kpi.label,
        breach.org.name,
        breach.period_label,
        shown(breach.observed),
        qtl.limit_text(breach.bound, breach.limit_value),
    )
    return {"channel": channel, **bk.message(text, breach_blocks(breach, buttons=buttons))}


def _warn_payload(s: Session, limit_id: int, key: str) -> dict[str, Any] | None:
    parts = key.split(":")
    lim = s.get(QualityLimit, limit_id)
    if lim is None or len(parts) != 4 or lim.warn_value is None:
        return None
    update = s.get(KpiUpdate, int(parts[3]))
    if update is None:
        return None
    text = fmt(
        ":warning: {} · *{}* for {} in {} is {} — past the warning threshold {} (QTL {}).",
        lim.study.code,
        lim.kpi.label,
        update.org.name,
        update.period_label,
        shown(update.value),
        qtl.limit_text(lim.bound, lim.warn_value),
        qtl.limit_text(lim.bound, lim.limit_value),
    )
    return {"channel": parts[2], **bk.message(text, [bk.section(text)])}


def payload(runtime: Runtime, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments, or None when what it tells of is gone."""
    with runtime.db.read() as s:
        if target.startswith(qtl.WARN_PREFIX):
            return _warn_payload(s, int(target.removeprefix(qtl.WARN_PREFIX)), key)
        return _breach_payload(s, int(target.removeprefix(qtl.BREACH_PREFIX)), key)
