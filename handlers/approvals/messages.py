"""What approvals look like in Slack: the request message, its decided form, the notices.

Pure rendering of `services.approval_log.ApprovalRecord` through the one Block Kit
builder: every name, note and reason a person typed is escaped (notes and reasons as a
block quote), and people are mentioned only through their stored (team, user). The
submitter's notice names the decider in print (name and organisation): it may be read in
another workspace, where a mention of a sponsor user would not resolve.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crobot.handlers import blockkit as bk
from crobot.handlers.blockkit import Block, Mrkdwn, fmt
from crobot.handlers.manifest import manifest_text
from crobot.services.actor import Actor
from crobot.services.approval_log import ApprovalRecord, person_of
from crobot.services.approvals import MAX_REASON
from crobot.services.kpi_values import shown
from crobot.services.signatures import (
    APPROVED_MEANING,
    HOW_TO_SET,
    MAX_PIN,
    manifest,
)
from crobot.storage.models import ApprovalState

APPROVE = "approval_approve"
REJECT = "approval_reject"
ACTIONS_BLOCK = "approval_actions"
REJECT_MODAL = "approval_reject_modal"
SIGN_MODAL = "approval_sign_modal"  # Part 11: approve with the signing PIN
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
PIN_BLOCK = "signing_pin"
PIN_INPUT = "signing_pin_input"
SIGNATURE_BLOCK = "approval_signature"
PART11_NOTE = (
    "21 CFR Part 11 study: a decision here is your electronic signature and asks for your "
    "signing PIN."
)


def _num(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return shown(value)  # every digit: an approver decides on the value as given
    return str(value)


def _who(label: str | None) -> Mrkdwn:
    return bk.mention(*person_of(label))


def describe_change(rec: ApprovalRecord) -> Mrkdwn:
    """What changed, old → new, then the submitter's note quoted."""
    s = rec.summary
    if s.get("kind") == "kpi":
        unit = fmt(" ({})", s["unit"]) if s.get("unit") else Mrkdwn("")
        text = fmt(
            "*{}*{} for *{}*, period {}: {} → *{}*",
            s.get("label", s.get("kpi")),
            unit,
            rec.org,
            s.get("period"),
            _num(s.get("old")),
            _num(s.get("new")),
        )
    elif s.get("kind") == "site_enrolment":
        text = fmt(
            "Enrolment at site *{}* ({}) for *{}*, period {}: {} → *{}* patient(s)",
            s.get("site"),
            s.get("site_name"),
            rec.org,
            s.get("period"),
            _num(s.get("old")),
            _num(s.get("new")),
        )
    else:
        text = fmt(
            "Milestone *{}* ({}) reported done on {} (planned {}): {} → *done*",
            s.get("milestone"),
            rec.org,
            s.get("actual"),
            s.get("planned"),
            s.get("from_status", "planned"),
        )
    if s.get("note"):
        text += Mrkdwn("\n") + bk.quote(s["note"])
    return text


def plain_summary(rec: ApprovalRecord) -> Mrkdwn:
    s = rec.summary
    if s.get("kind") == "kpi":
        return fmt("{} {}: {}", s.get("label", s.get("kpi")), s.get("period"), _num(s.get("new")))
    if s.get("kind") == "site_enrolment":
        return fmt("site {} {}: {} enrolled", s.get("site"), s.get("period"), _num(s.get("new")))
    return fmt("milestone {} done", s.get("milestone"))


def when(at: datetime, tz: str) -> str:
    """`14:05 CET on 25 Nov 2026` in the given zone."""
    local = at.astimezone(ZoneInfo(tz))
    return f"{local:%H:%M} {local.tzname()} on {local.day} {local:%b %Y}"


def printed_name(person: Actor | None, label: str | None) -> Mrkdwn:
    """`Ann Approver (Helix Pharma)` for a registered person, else their mention."""
    if person is not None and person.person is not None:
        return fmt("{} ({})", person.person.display_name, person.person.org.name)
    return _who(label)


def decision_line(
    rec: ApprovalRecord, tz: str, *, icon: bool = True, by: Mrkdwn | None = None
) -> Mrkdwn:
    """Who decided (`by`, else their mention) and when, in one line (the reason is quoted
    separately)."""
    at = when(rec.decided_at, tz) if rec.decided_at else "an unknown time"
    approved = rec.state == ApprovalState.APPROVED
    mark = (":white_check_mark: " if approved else ":x: ") if icon else ""
    verb = "Approved" if approved else "Rejected"
    return fmt("{}{} by {} at {}", Mrkdwn(mark), verb, by or _who(rec.decided_by), at)


def decision_text(rec: ApprovalRecord, tz: str, *, by: Mrkdwn | None = None) -> Mrkdwn:
    """The decision line, and for a rejection its reason as a quote."""
    text = decision_line(rec, tz, by=by)
    if rec.state == ApprovalState.REJECTED:
        text += Mrkdwn("\n*Reason:*\n") + (bk.quote(rec.reason) or Mrkdwn("> —"))
    return text


def signature_text(rec: ApprovalRecord) -> Mrkdwn | None:
    """The decision's manifest (21 CFR 11.50): meaning, printed name, UTC and the signer's
    local time; "signed" only for a Part 11 signature, else "acknowledged"."""
    m = manifest(rec)
    return None if m is None else manifest_text(m)


def signature_block(rec: ApprovalRecord) -> list[Block]:
    text = signature_text(rec)
    return [] if text is None else [bk.context(text, block_id=SIGNATURE_BLOCK)]


def already_decided_text(rec: ApprovalRecord) -> Mrkdwn:
    verb = "approved" if rec.state == ApprovalState.APPROVED else "rejected"
    return fmt("This request was already {} by {}.", verb, _who(rec.decided_by))


def decide_buttons(approval_id: int, *, block_id: str = ACTIONS_BLOCK) -> Block:
    return bk.actions(
        bk.button("Approve", APPROVE, str(approval_id), style="primary"),
        bk.button("Reject", REJECT, str(approval_id), style="danger"),
        block_id=block_id,
    )


def message_blocks(rec: ApprovalRecord, decider_tz: str | None = None) -> list[Block]:
    team, user = person_of(rec.requested_by)
    blocks = [
        bk.section(
            fmt("*Approval needed — {}* (#{})\n", rec.study, rec.id) + describe_change(rec),
            block_id="approval_summary",
        ),
        bk.context(
            fmt(
                "Submitted by {} ({}) · {} UTC",
                bk.mention(team, user),
                rec.org,
                f"{rec.requested_at:%Y-%m-%d %H:%M}",
            )
        ),
    ]
    if rec.pending:
        if rec.part11:
            blocks.append(bk.context(Mrkdwn(PART11_NOTE)))
        blocks.append(decide_buttons(rec.id))
    else:
        blocks.append(
            bk.section(decision_text(rec, decider_tz or "UTC"), block_id="approval_decision")
        )
        blocks += signature_block(rec)
    return blocks


def message_text(rec: ApprovalRecord) -> Mrkdwn:
    state = {"pending": "Approval needed", "approved": "Approved", "rejected": "Rejected"}
    return fmt("{} — {}: ", state[rec.state.value], rec.study) + plain_summary(rec)


def request_message(rec: ApprovalRecord, decider_tz: str | None = None) -> dict[str, Any]:
    """chat.postMessage / chat.update arguments for a copy of the request."""
    return bk.message(message_text(rec), message_blocks(rec, decider_tz))


def submitter_notice(
    rec: ApprovalRecord, decided_by: Mrkdwn, tz: str, *, direct: bool
) -> dict[str, Any]:
    """The decision told to the submitter: `direct`ly by DM, or in their vendor channel.

    What was submitted, the decision with the decider's printed name and the time in `tz`
    (the reader's zone), and for a rejection the reason.
    """
    verb = "approved" if rec.state == ApprovalState.APPROVED else "rejected"
    whose = Mrkdwn("Your submission") if direct else fmt("{}'s submission", _who(rec.requested_by))
    head = fmt("{} to {} was {}", whose, rec.study, verb)
    text = head + Mrkdwn(": ") + plain_summary(rec) + Mrkdwn(". ")
    text += decision_line(rec, tz, icon=False, by=decided_by)
    return bk.message(
        text,
        [
            bk.section(
                fmt("*{}* (#{})\n", head, rec.id) + describe_change(rec),
                block_id="approval_summary",
            ),
            bk.section(decision_text(rec, tz, by=decided_by), block_id="approval_decision"),
            *signature_block(rec),
        ],
    )


def _pin_input() -> Block:
    return bk.input_block(
        PIN_BLOCK,
        "Your signing PIN",
        bk.text_input(max_length=MAX_PIN),
        action_id=PIN_INPUT,
        hint="Your signature's second component, with your Slack identity. "
        "5 wrong PINs lock signing for 15 minutes.",
    )


def reject_modal(rec: ApprovalRecord, meta: dict[str, Any]) -> Block:
    """The reason for a rejection; in a Part 11 study also the signing PIN."""
    blocks = [
        bk.section(fmt("*{}* (#{})\n", rec.study, rec.id) + describe_change(rec)),
        bk.input_block(
            REASON_BLOCK,
            "Reason",
            bk.text_input(multiline=True, max_length=MAX_REASON),
            action_id=REASON_INPUT,
            hint="Say what is wrong so the vendor can fix it.",
        ),
    ]
    if rec.part11:
        blocks += [
            bk.context(fmt("Signing means: _{}_.", "Rejected: <the reason above>")),
            _pin_input(),
        ]
    return bk.modal(
        REJECT_MODAL,
        "Reject submission",
        blocks,
        submit="Sign and reject" if rec.part11 else "Reject",
        private_metadata=json.dumps(meta),
    )


def sign_modal(rec: ApprovalRecord, meta: dict[str, Any]) -> Block:
    """Part 11: approve by signing with the PIN."""
    return bk.modal(
        SIGN_MODAL,
        "Sign approval",
        [
            bk.section(fmt("*{}* (#{})\n", rec.study, rec.id) + describe_change(rec)),
            bk.context(fmt("Signing means: _{}_.", APPROVED_MEANING)),
            _pin_input(),
        ],
        submit="Sign and approve",
        private_metadata=json.dumps(meta),
    )


def no_pin_modal() -> Block:
    """Part 11 without a PIN: how to set one (nothing can be signed yet)."""
    return bk.modal(
        SIGN_MODAL,
        "Signing PIN needed",
        [
            bk.section(
                Mrkdwn(
                    "This study uses 21 CFR Part 11 signatures: a decision needs your Slack "
                    "identity *and* your signing PIN, and you have not set a PIN yet."
                )
            ),
            bk.section(Mrkdwn(HOW_TO_SET)),
        ],
        close="Close",
    )


def text_message(text: Mrkdwn) -> dict[str, Any]:
    """A one-section message (ephemeral replies)."""
    return bk.message(text, [bk.section(text)])
