"""Issue 9's acceptance test: hostile text through every write path, then every payload.

A person types `<!channel> <!here> <@U0EVIL> <https://evil.example|x> *b* _i_ ~s~`, bidi
controls, a line forging a decision, and (separately) 4,000 characters, into every field
crobot stores: milestone name, action title, KPI note, reject reason, and the three forms.
Then every surface that shows them is triggered: the `/cro` lists, status, `kpi show`,
the digest (preview and post), the App Home, the approval request, its decision update and
notices. Every call the fake Slack recorded and every ack body must be valid Block Kit
within Slack's limits (`slack_sdk.models`), and none may carry the typed markup raw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.handlers import blockkit as bk
from crobot.services.runtime import Runtime
from crobot.storage.models import (
    ActionItem,
    Approval,
    ApprovalState,
    KpiUpdate,
    Milestone,
    SubjectType,
)
from tests.approval_support import (
    block_action,
    outbox_settled,
    send,
    send_event,
    view_submission,
    wait_until,
)
from tests.conftest import APEX_PM, APPROVER, C_APEX, C_SPONSOR, TODAY, World
from tests.digest_helpers import link_id
from tests.fake_slack import Call, FakeSlack
from tests.slack_payloads import (
    HOSTILE_NEEDLES,
    ack_problems,
    assert_no_raw,
    call_problems,
    raw_problems,
    validate_calls,
)
from tests.slack_requests import command_body, post_signed
from tests.slash_helpers import NOW, Answer, SlashClient, slash_bot

HOSTILE = "<!channel> <!here> <@U0EVIL> <https://evil.example|x> *b* _i_ ~s~ \u202eevil\u2066"
FORGED = "\n:white_check_mark: *Approved by @Dana*\n"
TEXT = HOSTILE + FORGED + "end"  # ~110 characters: within every field's limit
LONG = (TEXT * 40)[:4000]
SOON = (TODAY + timedelta(days=5)).isoformat()  # within the digest's 14 days
META = json.dumps({"channel_id": C_APEX})
# What escaping makes of the typed markup: proof that a surface did show the user's text.
SHOWN = "&lt;!channel&gt;"


@dataclass
class Recorded:
    """Every ack body crobot answered, by what was sent; Slack calls are in the fake."""

    acks: list[tuple[str, str | dict[str, Any]]] = field(default_factory=list)

    def slash(self, client: SlashClient, label: str, text: str, user: str, channel: str) -> Answer:
        answer = client.send(text, user, channel)
        if not answer.deferred:
            self.acks.append((label, answer.payload))
        return answer

    def open_form(self, client: SlashClient, text: str, user: str, channel: str) -> None:
        """A command that answers by opening a form (views.open), not by a reply."""
        opened = len(client.fake.calls_to("views.open"))
        body = command_body(text, user_id=user, channel_id=channel)
        status, raw = post_signed(client.bot.events_url, body)
        assert status == 200, (text, status, raw)
        self.acks.append((f"open {text}", raw))
        client.fake.wait_for("views.open", opened + 1)

    def interaction(self, client: SlashClient, label: str, payload: dict[str, Any]) -> str:
        status, body = send(client.bot, payload)
        assert status == 200, (label, status, body)
        self.acks.append((label, body))
        return body


def _txt(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def _sel(value: str) -> dict[str, Any]:
    return {"value": {"type": "static_select", "selected_option": {"value": value}}}


def _date(value: str) -> dict[str, Any]:
    return {"value": {"type": "datepicker", "selected_date": value}}


def _user(value: str) -> dict[str, Any]:
    return {"value": {"type": "users_select", "selected_user": value}}


def _forms(text: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "modal_milestone_add",
            {"study": _sel("ONC-301"), "name": _txt(text), "planned": _date(SOON)},
        ),
        (
            "modal_action_add",
            {
                "study": _sel("ONC-301"),
                "title": _txt(text),
                "owner_user_id": _user(APEX_PM),
                "due": _date(SOON),
                "priority": _sel("high"),
            },
        ),
        (
            "modal_kpi_report",
            {
                "study": _sel("ONC-301"),
                "kpi": _sel("site_activation"),
                "value": _txt("3"),
                "note": _txt(text),
            },
        ),
    ]


def _request(
    world: World, fake: FakeSlack, kind: SubjectType, subject_id: int
) -> tuple[int, dict[str, Any]]:
    """The approval id and its request message, found as Slack holds it: the message in
    the sponsor channel whose Approve button carries that id."""
    with world.db.read() as s:
        approval_id = s.scalars(
            select(Approval.id).where(
                Approval.subject_type == kind, Approval.subject_id == subject_id
            )
        ).one()

    def posted() -> dict[str, Any] | None:
        for msg in fake.posted(C_SPONSOR):
            for block in msg.get("blocks") or []:
                for el in block.get("elements") or []:
                    if el.get("action_id") == "approval_approve" and el.get("value") == str(
                        approval_id
                    ):
                        return msg
        return None

    return approval_id, wait_until(posted)


def _write_everything(world: World, slash: SlashClient, rec: Recorded) -> None:
    """Every write path, over signed requests, with the hostile text and the 4,000 chars."""
    for form in ("milestone add", "action add", "kpi report"):  # no arguments: the form opens
        rec.open_form(slash, form, APEX_PM, C_APEX)
    for text in (TEXT, LONG):
        q = text.replace('"', "'")
        rec.slash(
            slash,
            "milestone add",
            f'milestone add ONC-301 "{q}" planned:{SOON}',
            APPROVER,
            C_SPONSOR,
        )
        rec.slash(
            slash,
            "vendor milestone add",
            f'milestone add ONC-301 "{q}" planned:{SOON}',
            APEX_PM,
            C_APEX,
        )
        rec.slash(
            slash,
            "action add",
            f'action add ONC-301 "{q}" <@{APEX_PM}|priya> due:{SOON}',
            APPROVER,
            C_SPONSOR,
        )
        rec.slash(
            slash,
            "kpi report",
            f'kpi report ONC-301 enrollment 14 note:"{q}"',
            APEX_PM,
            C_APEX,
        )
        for callback, values in _forms(text):
            rec.interaction(
                slash,
                f"form {callback}",
                view_submission(callback, values, user=APEX_PM, private_metadata=META),
            )


def _stored(world: World) -> dict[str, int]:
    with world.db.read() as s:
        return {
            "milestones": len(s.scalars(select(Milestone).where(Milestone.name == TEXT)).all()),
            "actions": len(s.scalars(select(ActionItem).where(ActionItem.title == TEXT)).all()),
            "notes": len(s.scalars(select(KpiUpdate).where(KpiUpdate.note == TEXT)).all()),
        }


def _decide(world: World, slash: SlashClient, fake: FakeSlack, rec: Recorded) -> None:
    """Reject the KPI note (a 4,000-character reason, refused; then the hostile one),
    and approve the milestone marked done."""
    with world.db.read() as s:
        update = s.scalars(select(KpiUpdate).where(KpiUpdate.note == TEXT)).first()
        done = s.scalars(
            select(Milestone).where(Milestone.name == TEXT, Milestone.org_id == world.apex_id)
        ).first()
    assert update is not None and done is not None
    kpi_request, kpi_msg = _request(world, fake, SubjectType.KPI_UPDATE, update.id)
    rec.slash(slash, "milestone done", f"milestone update {done.id} done", APEX_PM, C_APEX)
    ms_request, ms_msg = _request(world, fake, SubjectType.MILESTONE, done.id)

    opened = len(fake.calls_to("views.open"))
    rec.interaction(
        slash,
        "reject click",
        block_action("approval_reject", kpi_request, user=APPROVER, msg=kpi_msg),
    )
    view = fake.wait_for("views.open", opened + 1)[-1].params["view"]
    meta = str(view.get("private_metadata") or "")
    for reason in (LONG, TEXT):
        values = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
        rec.interaction(
            slash,
            "reject reason",
            view_submission("approval_reject_modal", values, user=APPROVER, private_metadata=meta),
        )

    rec.interaction(
        slash,
        "approve click",
        block_action("approval_approve", ms_request, user=APPROVER, msg=ms_msg),
    )

    def decided() -> bool:
        with world.db.read() as s:
            states = {
                s.get_one(Approval, kpi_request).state,
                s.get_one(Approval, ms_request).state,
            }
        return states == {ApprovalState.REJECTED, ApprovalState.APPROVED}

    wait_until(decided)
    # The decision updates both request messages in place, and the submitter is told of
    # each by DM and in Apex's channel.
    wait_until(lambda: outbox_settled(world.db, kpi_request))
    wait_until(lambda: outbox_settled(world.db, ms_request))
    assert len(fake.calls_to("chat.update")) == 2
    assert len(fake.posted("DAPEX")) == 2


def _show_everything(world: World, slash: SlashClient, fake: FakeSlack, rec: Recorded) -> None:
    for label, text, user, channel in [
        ("milestone list", "milestone list ONC-301", APPROVER, C_SPONSOR),
        ("milestone list (vendor)", "milestone list", APEX_PM, C_APEX),
        ("action list", "action list", APPROVER, C_SPONSOR),
        ("action list mine", "action list mine", APEX_PM, C_APEX),
        ("status", "status ONC-301", APPROVER, C_SPONSOR),
        ("kpi show", "kpi show ONC-301 enrollment", APPROVER, C_SPONSOR),
        ("kpi show (vendor)", "kpi show ONC-301 site_activation", APEX_PM, C_APEX),
        ("digest preview", "digest preview", APPROVER, C_SPONSOR),
    ]:
        rec.slash(slash, label, text, user, channel)
    _post_digest(world, fake)
    for user in (APPROVER, APEX_PM):
        before = len(fake.calls_to("views.publish"))
        status, body = send_event(slash.bot, {"type": "app_home_opened", "user": user})
        assert status == 200
        rec.acks.append((f"app_home_opened {user}", body))
        fake.wait_for("views.publish", before + 1)


def _post_digest(world: World, fake: FakeSlack) -> None:
    client = delivery_client(WebClient(token="xoxb-test-token", base_url=fake.base_url))
    delivery = Delivery(Runtime(world.db, now=lambda: NOW), client, pacer=ChannelPacer(0.0))
    out = delivery.send_link(link_id(world.db, C_SPONSOR), "escaping-test")
    assert out.state == "sent", out


def surface(call: Call) -> str:
    """Which of crobot's surfaces a recorded call is, for a report a person can read."""
    p = call.params
    if call.method.startswith("/respond/"):
        return "response_url reply"
    if call.method.startswith("views."):
        view = p.get("view") or {}
        return f"{call.method} {view.get('type')} {view.get('callback_id') or ''}".strip()
    event = (p.get("metadata") or {}).get("event_type") or ""
    where = "thread " if p.get("thread_ts") else ""
    return f"{call.method} {where}{p.get('channel')} {event}".strip()


def _report(calls: list[Call], rec: Recorded) -> list[str]:
    """Every problem, grouped by the surface it came from: invalid payloads in full, raw
    markup as the set of sequences that arrived raw."""
    invalid: list[str] = []
    raw: dict[str, set[str]] = {}
    for n, call in enumerate(calls):
        invalid += [f"{surface(call)} (call {n}): {p}" for p in call_problems(call)]
        for problem in raw_problems(call.params, HOSTILE_NEEDLES, ""):
            raw.setdefault(surface(call), set()).add(problem.needle)
    for label, body in rec.acks:
        invalid += [f"ack of {label}: {p}" for p in ack_problems(body)]
        payload = json.loads(body) if isinstance(body, str) and body.strip() else body
        for problem in raw_problems(payload, HOSTILE_NEEDLES, ""):
            raw.setdefault(f"ack of {label}", set()).add(problem.needle)
    return invalid + [f"{where}: raw {sorted(needles)}" for where, needles in sorted(raw.items())]


def _calls(fake: FakeSlack) -> list[Call]:
    with fake.state.lock:
        return list(fake.state.calls)


def test_hostile_text_through_every_write_path_never_reaches_slack_raw(
    world: World, fake_slack: FakeSlack
) -> None:
    rec = Recorded()
    with slash_bot(world.db, fake_slack) as slash:
        _write_everything(world, slash, rec)
        # The hostile text is stored as typed (command and form each): escaping is output's job.
        assert _stored(world) == {"milestones": 3, "actions": 2, "notes": 2}
        _decide(world, slash, fake_slack, rec)
        _show_everything(world, slash, fake_slack, rec)
        calls = _calls(fake_slack)
    problems = _report(calls, rec)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    # Not vacuous: the surfaces did show the user's text, escaped.
    shown = json.dumps([c.params for c in calls] + [a for _, a in rec.acks], ensure_ascii=False)
    assert shown.count(SHOWN) >= 10
    assert validate_calls(calls, [a for _, a in rec.acks]) >= 30
    assert assert_no_raw(calls, acks=[a for _, a in rec.acks]) >= 30


def test_digest_preview_and_post_show_hostile_names_escaped(
    world: World, fake_slack: FakeSlack
) -> None:
    """The digest's part of the above, through the services (no handler in between)."""
    from crobot.services import actions, kpis, milestones

    with world.db.write() as s:
        for user in (APPROVER, APEX_PM):
            milestones.add(
                s,
                world.actor(user),
                today=TODAY,
                study="ONC-301",
                name=TEXT,
                planned=TODAY + timedelta(days=5),
            )
        actions.add(
            s,
            world.actor(APPROVER),
            today=TODAY,
            study="ONC-301",
            title=TEXT,
            owner_user_id=APEX_PM,
            due=TODAY + timedelta(days=5),
        )
        for _ in range(40):  # max-length names of `&<>`: many, escaped five-fold
            milestones.add(
                s,
                world.actor(APPROVER),
                today=TODAY,
                study="ONC-301",
                name="&<>" * 66,
                planned=TODAY + timedelta(days=3),
            )
        kpis.report(
            s, world.actor(APEX_PM), today=TODAY, study="ONC-301", kpi="enrollment", value=7
        )
    acks: list[dict[str, Any]] = []
    previews: list[dict[str, Any]] = []
    with slash_bot(world.db, fake_slack) as slash:
        for user, channel in ((APPROVER, C_SPONSOR), (APEX_PM, C_APEX)):
            answer = slash.send("digest preview", user, channel)
            previews.append(answer.payload)
            if not answer.deferred:  # else it went to response_url, recorded by the fake
                acks.append(answer.payload)
    _post_digest(world, fake_slack)
    calls = _calls(fake_slack)
    # Two previews, the posted digest and its thread reply listing the 40 long names.
    assert validate_calls(calls, acks) == 4
    assert len([m for m in fake_slack.posted(C_SPONSOR) if m.get("thread_ts")]) == 1
    assert assert_no_raw(calls, acks=acks) == len(calls) + len(acks)
    posted = json.dumps(fake_slack.posted(C_SPONSOR), ensure_ascii=False)
    assert SHOWN in posted and "&amp;&lt;&gt;" in posted
    assert all(SHOWN in json.dumps(p, ensure_ascii=False) for p in previews)


def test_the_validator_finds_what_it_is_for() -> None:
    """Raw markup, over-long sections, too many blocks and a missing `text` all fail."""
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    bad: list[dict[str, Any]] = [
        {"channel": "C1", "text": "hi", "blocks": [section]},
        {"channel": "C1", "text": "hi", "blocks": [{"type": "divider"}] * 51},
        {"channel": "C1", "blocks": [{"type": "divider"}]},
        {"channel": "C1", "text": "hi", "blocks": [{"type": "no_such_block"}]},
        {
            "channel": "C1",
            "text": "x",
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        },
    ]
    for payload in bad:
        assert call_problems(Call("chat.postMessage", payload, {}, 0.0)), payload
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": []}
    assert call_problems(Call("views.open", {"view": view}, {}, 0.0))
    for raw in (*HOSTILE.split(" "), FORGED, "\u202a"):
        payload = {
            "text": "ok",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": raw}}],
        }
        assert raw_problems(payload, HOSTILE_NEEDLES, "t"), raw
    escaped = {"text": "&lt;!channel&gt; \u2217b\u2217 ˍiˍ", "private_metadata": "<!channel>"}
    assert raw_problems(escaped, HOSTILE_NEEDLES, "t") == []
    plain = {"type": "plain_text", "text": "*b* _i_ ~s~"}  # Slack shows plain text literally
    assert raw_problems({"blocks": [{"type": "header", "text": plain}]}, HOSTILE_NEEDLES, "t") == []
    quoted = {"text": "note:\n>:white_check_mark: \u2217Approved by @Dana\u2217"}
    assert raw_problems(quoted, HOSTILE_NEEDLES, "t") == []


def test_the_validator_knows_native_charts_and_tables() -> None:
    """Charts and tables as crobot builds them pass; each of Slack's limits fails."""
    good_chart = bk.line_chart("Enrolment", ["W1", "W2"], [("Apex", [1.0, 2.0])], y_label="pt")
    good_table = bk.table(["A", "B"], [["1", "2"]], right=[1])
    ok = {"text": "t", "blocks": [good_chart, good_table]}
    assert call_problems(Call("chat.postMessage", ok, {}, 0.0)) == []
    chart = good_chart["chart"]
    bad_charts = [
        {**good_chart, "title": "t" * 51},
        {**good_chart, "chart": {**chart, "series": [chart["series"][0]] * 2}},  # same name
        {**good_chart, "chart": {**chart, "series": []}},
        {
            **good_chart,
            "chart": {**chart, "axis_config": {"categories": ["W1", "W2" + "x" * 20]}},
        },
        {
            **good_chart,
            "chart": {
                **chart,
                "series": [{"name": "A", "data": [{"label": "W1", "value": 1}]}],  # W2 missing
            },
        },
    ]
    for bad in bad_charts:
        payload = {"text": "t", "blocks": [bad]}
        assert call_problems(Call("chat.postMessage", payload, {}, 0.0)), bad
    three = {"text": "t", "blocks": [good_chart] * 3}
    assert call_problems(Call("chat.postMessage", three, {}, 0.0))
    seven = [(f"S{i}", [1.0, 2.0]) for i in range(7)]
    with pytest.raises(ValueError):
        bk.line_chart("t", ["W1", "W2"], seven)
    long_table = {**good_table, "rows": good_table["rows"] * 101}
    wide_table = {**good_table, "rows": [[{"type": "raw_text", "text": "x"}] * 21]}
    for bad in (long_table, wide_table):
        assert call_problems(Call("chat.postMessage", {"text": "t", "blocks": [bad]}, {}, 0.0))


def test_the_escape_fast_path_gives_what_the_full_escape_gives() -> None:
    """`clean`/`esc` skip their translations when a scan finds nothing to change (most
    text); every string of the characters they treat must come out as the full path's."""
    import itertools

    def full_clean(value: str, line: bool) -> str:
        text = value.translate(bk._BIDI)
        return bk._LINE_BREAKS.sub(" ", text).strip() if line else text

    alphabet = "a <>&*_~`\u202a\u202e\u2066\u2069\r\n\u2028\u2029\x0b\x0c\x85\t\u00e9"
    strings = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    strings += ["  Apex CRO  ", "ONC-301", "12.5", "\u202eevil\u202c", "a\r\nb"]
    for text in strings:
        for line in (False, True):
            assert bk.clean(text, line=line) == full_clean(text, line), (text, line)
            expected = full_clean(text, line).translate(bk._MRKDWN)
            assert bk.esc(text, line=line) == expected, (text, line)
    assert bk.esc(None) == "" and bk.esc(3.5) == "3.5" and bk.esc(-2) == "-2"
    assert bk.esc(float("nan")) == "nan" and bk.esc(1e21) == "1e+21"
    assert bk.esc(date(2026, 11, 27), line=True) == "2026-11-27"

    class Sly(int):  # a subclass may print anything: it takes the full path
        def __str__(self) -> str:
            return "<!channel>"

    assert bk.esc(Sly(1)) == "&lt;!channel&gt;"
