"""Approvals as electronic signatures (21 CFR Part 11), end to end through signed requests.

- §11.50: every decision shows the signer's printed name, UTC and local time and the
  meaning, on the Slack message, in the App Home, in `crobot export approvals` and in the
  audit export; a decision outside Part 11 mode says "acknowledged", never "signed".
- §11.70: `crobot audit verify` fails for a signature copied onto another approval, and for
  signed content changed after the decision.
- §11.200 / §11.300: a Part 11 study refuses a decision without the right PIN, locks
  signing after 5 wrong ones (the right PIN is refused too while locked), audits each
  wrong PIN, the lock and every attempt during it; with the right PIN it approves, signed.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View
from sqlalchemy import select, text, update

from crobot.bot.cli import main
from crobot.services import approvals, directory, signatures
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    KpiUpdate,
    SigningPin,
    utcnow,
)
from tests.approval_support import (
    assert_chain_ok,
    audit_actions,
    awaiting,
    block_action,
    bot_for,
    click,
    message,
    outbox_settled,
    pending_kpi,
    posted_request,
    send,
    view_submission,
    wait_until,
)
from tests.bot_server import RunningBot
from tests.conftest import World
from tests.fake_slack import FakeSlack
from tests.test_approval_escaping import _milestone_done
from tests.test_home import _open_home

PIN = "314159"
# Ann is in New York; decisions are stamped with the real clock, so either season's zone.
NY = r"E[SD]T \(UTC-0[45]:00\)"
LOCAL_NY = rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {NY}, signer's local time"
UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def _texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        out.append(str((b.get("text") or {}).get("text", "")))
        out += [str(e.get("text", "")) for e in b.get("elements", []) if b["type"] == "context"]
    return "\n".join(out)


def _signature(blocks: list[dict[str, Any]]) -> str:
    found = [b for b in blocks if b.get("block_id") == "approval_signature"]
    assert len(found) == 1, blocks
    return _texts(found)


def _decided_copy(db: Database, fake_slack: FakeSlack, aid: int, msg: dict[str, Any]) -> str:
    """The request message once rewritten with the decision: its signature block."""
    wait_until(lambda: outbox_settled(db, aid))
    return _signature(message(fake_slack, msg["channel"], msg["ts"])["blocks"])


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def _csv(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


# --- §11.50: the manifest everywhere ------------------------------------------------------


def test_every_decision_shows_name_utc_local_time_and_meaning(
    cli_env: Database, world: World, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    db = cli_env
    with bot_for(db, fake_slack) as bot:
        approved, msg = awaiting(bot, world, fake_slack)
        click(bot, "approval_approve", approved, msg)
        shown = _decided_copy(db, fake_slack, approved, msg)
        assert "Meaning:* Approved: reviewed and accepted as accurate" in shown
        assert "Acknowledged by Ann Approver (Slack identity; not a Part 11 signature)" in shown
        assert "igned" not in shown  # not a Part 11 study: never "signed"
        assert re.search(UTC_TIME, shown)
        assert re.search(LOCAL_NY, shown)

        rejected = pending_kpi(world, 13)
        with db.write() as s:
            approvals.decide(
                s, world.actor("UAPPROVER"), rejected, approve=False, reason="Wrong *week*"
            )
        home = _open_home(bot, fake_slack, "UAPPROVER")
        View(**home).validate_json()
        home_text = _texts(home["blocks"])
        assert "Recent decisions" in home_text
        assert "Meaning:* Rejected: Wrong \u2217week\u2217" in home_text  # escaped
        assert "Meaning:* Approved: reviewed and accepted as accurate" in home_text
        assert home_text.count("Acknowledged by Ann Approver") == 2

    code, out = _cli(capsys, "export", "approvals")
    assert code == 0
    rows = {int(r["id"]): r for r in _csv(out)}
    assert rows[approved]["signer"] == "Ann Approver"
    assert rows[approved]["meaning"] == "Approved: reviewed and accepted as accurate"
    assert rows[approved]["signature"] == "acknowledged"
    assert rows[approved]["signed_at_utc"].endswith(" UTC")
    assert re.search(NY + "$", rows[approved]["signer_local_time"])
    assert rows[rejected]["meaning"] == "Rejected: Wrong *week*"

    code, out = _cli(capsys, "audit", "export")
    assert code == 0
    decisions = [r for r in _csv(out) if r["action"] in ("approval.approve", "approval.reject")]
    assert len(decisions) == 2
    for row in decisions:
        assert row["signer"] == "Ann Approver" and row["signed_at_utc"].endswith(" UTC")
        assert re.search(NY + "$", row["signer_local_time"])
        assert row["meaning"] in (
            "Approved: reviewed and accepted as accurate",
            "Rejected: Wrong *week*",
        )
    assert _cli(capsys, "audit", "verify")[0] == 0
    assert_chain_ok(db)


# --- §11.70: the signature is bound to what it signs --------------------------------------


def _decide_two(world: World) -> tuple[int, int]:
    # A lab reports query aging (enrolment is a CRO's KPI).
    first, second = pending_kpi(world, 12), pending_kpi(world, 40, user="ULAB", kpi="query_aging")
    with world.db.write() as s:
        for aid in (first, second):
            approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True)
    return first, second


def test_a_signature_copied_onto_another_approval_fails_verify(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _decide_two(world)
    code, out = _cli(capsys, "audit", "verify")
    assert code == 0 and "SIGNATURE" not in out
    fields = ("decided_by", "decided_at", *signatures.SIGNATURE_FIELDS)
    with cli_env.write() as s:
        source = s.get_one(Approval, first)
        copied = {f: getattr(source, f) for f in fields}
        s.execute(update(Approval).where(Approval.id == second).values(**copied))
    code, out = _cli(capsys, "audit", "verify")
    assert code == 1
    assert f"approval #{second}: the signed content changed" in out
    assert f"approval #{first}" not in out


def test_signed_content_changed_after_the_decision_fails_verify(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = _decide_two(world)
    with cli_env.write() as s:
        subject = s.get_one(Approval, first).subject_id
        s.execute(update(KpiUpdate).where(KpiUpdate.id == subject).values(value=99))
    code, out = _cli(capsys, "audit", "verify")
    assert code == 1
    assert f"SIGNATURE BROKEN: approval #{first}: the signed content changed" in out


def test_a_signature_edited_or_removed_on_the_row_fails_verify(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _decide_two(world)
    with cli_env.write() as s:
        s.execute(update(Approval).where(Approval.id == first).values(signer_name="Mallory"))
        s.execute(
            update(Approval)
            .where(Approval.id == second)
            .values(**dict.fromkeys(signatures.SIGNATURE_FIELDS))
        )
    code, out = _cli(capsys, "audit", "verify")
    assert code == 1
    assert f"approval #{first}: the signature does not belong to this decision" in out
    assert f"approval #{second}: its signature was removed" in out


def test_milestone_decisions_are_bound_too(world: World) -> None:
    approved, rejected = _milestone_done(world, "FPI"), _milestone_done(world, "LPI")
    with world.db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), approved, approve=True)
        approvals.decide(s, world.actor("UAPPROVER"), rejected, approve=False, reason="No")
    with world.db.read() as s:
        # A rejection withdraws the reported date; the signature still verifies.
        assert signatures.verify_signatures(s) == []


# --- §11.200 / §11.300: Part 11 mode ------------------------------------------------------


def _part11(world: World) -> None:
    with world.db.write() as s:
        directory.update_study(s, SYSTEM, code="ONC-301", signatures="part11")


def _opened(fake_slack: FakeSlack, count: int) -> dict[str, Any]:
    view: dict[str, Any] = fake_slack.wait_for("views.open", count)[-1].params["view"]
    View(**view).validate_json()  # within Slack's limits
    return view


def _set_pin(bot: RunningBot, fake_slack: FakeSlack, pin: str, user: str = "UAPPROVER") -> None:
    """Home → Set signing PIN → the modal, submitted."""
    opened = len(fake_slack.calls_to("views.open"))
    button = block_action("home_set_signing_pin", 0, user=user, msg=None, home=True)
    assert send(bot, button)[0] == 200
    view = _opened(fake_slack, opened + 1)
    assert view["callback_id"] == "signing_pin_modal"
    typed = {"type": "plain_text_input", "value": pin}
    values = {"pin_new": {"value": typed}, "pin_confirm": {"value": typed}}
    status, body = send(bot, view_submission("signing_pin_modal", values, user=user))
    assert status == 200 and "errors" not in body


def _sign(
    bot: RunningBot, fake_slack: FakeSlack, aid: int, msg: dict[str, Any], pin: str
) -> dict[str, Any] | None:
    """Approve on `msg`: the signing modal opens; submit `pin`. The modal's inline errors,
    or None when it was accepted."""
    opened = len(fake_slack.calls_to("views.open"))
    click(bot, "approval_approve", aid, msg)
    view = _opened(fake_slack, opened + 1)
    assert view["callback_id"] == "approval_sign_modal" and "submit" in view
    values = {"signing_pin": {"signing_pin_input": {"type": "plain_text_input", "value": pin}}}
    payload = view_submission(
        "approval_sign_modal", values, user="UAPPROVER", private_metadata=view["private_metadata"]
    )
    status, body = send(bot, payload)
    assert status == 200
    if not body:
        return None
    errors: dict[str, Any] = json.loads(body)["errors"]
    return errors


def _state(db: Database, aid: int) -> tuple[ApprovalState, ApprovalState]:
    with db.read() as s:
        approval = s.get_one(Approval, aid)
        value = s.get_one(KpiUpdate, approval.subject_id)
        return approval.state, value.approval_state


PENDING = (ApprovalState.PENDING, ApprovalState.PENDING)


def test_part11_refuses_without_the_right_pin_locks_after_five_then_signs(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    _part11(world)
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        assert "asks for your signing PIN" in _texts(msg["blocks"])

        # No PIN set: the modal says how to set one, and nothing can be submitted.
        opened = len(fake_slack.calls_to("views.open"))
        click(bot, "approval_approve", aid, msg)
        view = _opened(fake_slack, opened + 1)
        assert "submit" not in view and "Set signing PIN" in _texts(view["blocks"])
        # A forged submission without a PIN decides nothing either.
        forged = view_submission(
            "approval_sign_modal",
            {},
            user="UAPPROVER",
            private_metadata=json.dumps({"approval_id": aid, "from_home": False}),
        )
        assert "You have not set a signing PIN" in send(bot, forged)[1]
        assert _state(db, aid) == PENDING

        _set_pin(bot, fake_slack, PIN)
        with db.read() as s:
            stored = s.scalars(select(SigningPin)).one().pin_hash
        assert stored.startswith("scrypt$") and PIN not in stored

        for attempt in range(1, 6):
            errors = _sign(bot, fake_slack, aid, msg, f"wrong{attempt}")
            assert errors is not None and "not your signing PIN" in errors["signing_pin"]
            if attempt < 5:
                assert f"{5 - attempt} more wrong PIN(s) lock signing" in errors["signing_pin"]
            assert _state(db, aid) == PENDING
        assert len(audit_actions(db, signatures.PIN_WRONG)) == 5
        locks = audit_actions(db, signatures.PIN_LOCKED)
        assert len(locks) == 1 and (locks[0].after or {})["locked_until"]

        # Locked: the right PIN is refused too, and the attempt is audited.
        errors = _sign(bot, fake_slack, aid, msg, PIN)
        assert errors is not None and "Signing is locked" in errors["signing_pin"]
        assert _state(db, aid) == PENDING
        assert len(audit_actions(db, signatures.PIN_REFUSED_LOCKED)) == 1
        assert not audit_actions(db, "approval.approve")

        # 15 minutes later (the lock moved into the past): the right PIN signs.
        with db.write() as s:
            past = utcnow() - timedelta(seconds=1)
            s.execute(update(SigningPin).values(locked_until=past))
        assert _sign(bot, fake_slack, aid, msg, PIN) is None
        assert _state(db, aid) == (ApprovalState.APPROVED, ApprovalState.APPROVED)
        shown = _decided_copy(db, fake_slack, aid, msg)
        assert "Signed by Ann Approver ·" in shown and "cknowledged" not in shown
        assert "Meaning:* Approved: reviewed and accepted as accurate" in shown
    with db.read() as s:
        approval = s.get_one(Approval, aid)
        assert approval.signature_method == signatures.SIGNED
        assert signatures.verify_signatures(s) == []
        # The PIN is nowhere in the audit trail.
        dumped = json.dumps([[e.before, e.after] for e in s.scalars(select(AuditEvent))])
    assert PIN not in dumped
    assert_chain_ok(db)


def test_part11_reject_needs_the_pin_too(db: Database, world: World, fake_slack: FakeSlack) -> None:
    _part11(world)
    with bot_for(db, fake_slack) as bot:
        _set_pin(bot, fake_slack, PIN)
        aid, msg = awaiting(bot, world, fake_slack)
        opened = len(fake_slack.calls_to("views.open"))
        click(bot, "approval_reject", aid, msg)
        view = _opened(fake_slack, opened + 1)
        assert view["callback_id"] == "approval_reject_modal"
        assert any(b.get("block_id") == "signing_pin" for b in view["blocks"])

        def submit(pin: str) -> str:
            values = {
                "reason": {"reason_input": {"type": "plain_text_input", "value": "Wrong week"}},
                "signing_pin": {"signing_pin_input": {"type": "plain_text_input", "value": pin}},
            }
            payload = view_submission(
                "approval_reject_modal",
                values,
                user="UAPPROVER",
                private_metadata=view["private_metadata"],
            )
            status, body = send(bot, payload)
            assert status == 200
            return body

        assert "not your signing PIN" in submit("000000")
        assert _state(db, aid) == PENDING
        assert submit(PIN) == ""
        assert _state(db, aid) == (ApprovalState.REJECTED, ApprovalState.REJECTED)
        shown = _decided_copy(db, fake_slack, aid, msg)
        assert "Meaning:* Rejected: Wrong week" in shown and "Signed by Ann Approver" in shown


def test_part11_decisions_need_the_pin_in_the_service_too(world: World) -> None:
    """Whatever calls it: no PIN, no Part 11 decision."""
    _part11(world)
    aid = pending_kpi(world, 12)
    with world.db.write() as s:
        signatures.set_pin(s, world.actor("UAPPROVER"), PIN, PIN)
    with pytest.raises(signatures.PinRefused), world.db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True)
    with world.db.write() as s:
        decision = approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True, pin=PIN)
        assert decision.approval.signature_method == signatures.SIGNED


def test_changing_a_pin_needs_the_current_one(world: World) -> None:
    actor = world.actor("UAPPROVER")
    with world.db.write() as s:
        signatures.set_pin(s, actor, PIN, PIN)
    with pytest.raises(signatures.PinRefused) as refused, world.db.write() as s:
        signatures.set_pin(s, actor, "271828", "271828", current="nope!!")
    assert refused.value.wrong
    with world.db.write() as s:
        signatures.set_pin(s, actor, "271828", "271828", current=PIN)
        signatures.check_pin(s, actor, "271828")


def test_an_administrator_resets_a_forgotten_pin(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with cli_env.write() as s:
        signatures.set_pin(s, world.actor("UAPPROVER"), PIN, PIN)
    code, out = _cli(capsys, "person", "reset-pin", "UAPPROVER", "--team", "T1")
    assert code == 0 and "removed" in out
    with cli_env.read() as s:
        assert not signatures.has_pin(s, world.actor("UAPPROVER"))
    resets = audit_actions(cli_env, signatures.PIN_RESET)
    assert len(resets) == 1 and (resets[0].before or {})["person"] == "T1:UAPPROVER"
    assert _cli(capsys, "person", "reset-pin", "UAPPROVER", "--team", "T1")[0] == 2


def test_study_signature_mode_from_the_cli(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(capsys, "study", "update", "ONC-301", "--signatures", "part11")
    assert code == 0 and "Part 11 signatures" in out
    code, out = _cli(
        capsys,
        "study",
        "add",
        "ONC-999",
        "--title",
        "T",
        "--sponsor",
        "Helix Pharma",
        "--signatures",
        "part11",
    )
    assert code == 0 and "Part 11" in out
    with cli_env.read() as s:
        rows = s.execute(text("SELECT code, signatures FROM studies")).all()
    modes = {str(code): str(mode) for code, mode in rows}
    assert modes == {"ONC-301": "part11", "ONC-999": "part11"}
    changes = audit_actions(cli_env, "study.update")
    assert changes[-1].before == {"signatures": "acknowledge"}
    assert changes[-1].after == {"signatures": "part11"}


def test_posted_copy_is_unchanged_for_acknowledged_studies(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        posted = message(fake_slack, **posted_request(bot, world, aid))
        assert "signing PIN" not in _texts(copy.deepcopy(posted)["blocks"])
