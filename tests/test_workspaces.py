"""Several workspaces: OAuth installs, partners' own installations, shared channels,
token rotation before background posts, and uninstalls — through real HTTP: the OAuth
pages and signed Slack requests to the running bot, and a fake Slack serving two
workspaces (each token answers for its own team)."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.bot.app import ConfigError, require_tokens
from crobot.bot.scheduling import DigestScheduler
from crobot.bot.settings import Settings
from crobot.bot.workspaces import BOT_SCOPES
from crobot.services import directory
from crobot.services.actor import SYSTEM
from crobot.services.runtime import Runtime
from crobot.storage.models import (
    INSTALLATIONS_TABLE,
    ChannelLink,
    DigestRun,
    DigestRunState,
    Person,
    Role,
)
from tests.bot_server import RunningBot, running_bot
from tests.conftest import C_APEX, C_SPONSOR, World
from tests.digest_helpers import Clock, seed
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET, post, signed_headers
from tests.slash_helpers import NOW, SlashClient

CLIENT_ID, CLIENT_SECRET = "1111.2222", "client-secret-for-tests"
SPONSOR_TEAM, CRO_TEAM, OTHER_TEAM = "T1", "TAPEX", "TOTHER"
MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def oauth_settings(db_url: str, fake: FakeSlack) -> Settings:
    return Settings(
        CROBOT_DATABASE_URL=db_url,
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=SecretStr(CLIENT_SECRET),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        CROBOT_SLACK_API_URL=fake.base_url,
        CROBOT_SCHEDULER=False,
    )


@contextmanager
def oauth_bot(world: World, fake: FakeSlack, clock: Clock | None = None) -> Iterator[RunningBot]:
    for team in (SPONSOR_TEAM, CRO_TEAM, OTHER_TEAM):
        fake.add_workspace(team, name=f"{team} workspace")
    runtime = Runtime(world.db, now=clock or (lambda: NOW))
    with running_bot(oauth_settings(world.db.url, fake), runtime) as bot:
        yield bot


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers=headers or {}, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, _lower(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, _lower(err.headers.items()), err.read().decode()


def _lower(items: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


def start_install(bot: RunningBot) -> tuple[str, str]:
    """Open the "Add to Slack" page: the state it issued, and its cookie."""
    status, headers, html = get(bot.url + "/slack/install")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    name, _, state = cookie.partition("=")
    assert name == "slack-app-oauth-state" and state
    assert f"state={state}" in html and "client_id=" + CLIENT_ID in html
    return state, cookie


def finish_install(bot: RunningBot, code: str, state: str, cookie: str | None) -> int:
    headers = {"Cookie": cookie} if cookie else {}
    status, _, _ = get(f"{bot.url}/slack/oauth_redirect?code={code}&state={state}", headers)
    return status


def install(
    bot: RunningBot, fake: FakeSlack, team: str, installer: str, expires_in: int | None = None
) -> None:
    """The whole flow, as the workspace admin's browser goes through it."""
    state, cookie = start_install(bot)
    assert finish_install(bot, fake.grant_code(team, installer, expires_in), state, cookie) == 200


def installations(world: World) -> list[tuple[str, str | None, str]]:
    c = INSTALLATIONS_TABLE.c
    with world.db.read() as s:
        rows = s.execute(select(c.team_id, c.bot_token, c.client_id).order_by(c.id)).all()
    return [(str(r[0]), r[1], str(r[2])) for r in rows]


def register(world: World, org: str, team: str) -> None:
    with world.db.write() as s:
        directory.update_org(s, SYSTEM, name=org, slack_team_id=team)


def scheduler(world: World, fake: FakeSlack, clock: Clock) -> DigestScheduler:
    """A scheduler as `crobot serve` builds it in OAuth mode (jobs called directly)."""
    from crobot.bot.workspaces import Workspaces

    settings = oauth_settings(world.db.url, fake)
    runtime = Runtime(world.db, now=clock, bot_token=Workspaces(settings, world.db).bot_token)
    return DigestScheduler(settings, runtime, WebClient(base_url=fake.base_url))


def link(world: World, channel: str, team: str, audience: str) -> int:
    with world.db.write() as s:
        made = directory.link_channel(
            s,
            SYSTEM,
            team_id=team,
            channel_id=channel,
            study="ONC-301",
            audience=audience,
            timezone="UTC",
        )
        made.created_at = datetime(2026, 1, 1, tzinfo=UTC)
        return made.id


# --- the OAuth flow -------------------------------------------------------------------


def test_oauth_flow_stores_an_installation_and_refuses_forged_or_reused_state(
    world: World, fake_slack: FakeSlack
) -> None:
    with oauth_bot(world, fake_slack) as bot:
        state, cookie = start_install(bot)
        code = fake_slack.grant_code(CRO_TEAM, "UCROADMIN")
        assert finish_install(bot, code, state, cookie) == 200
        exchange = fake_slack.calls_to("oauth.v2.access")
        assert [c.params.get("code") for c in exchange] == [code]
        stored = installations(world)
        assert [(team, client) for team, _, client in stored] == [(CRO_TEAM, CLIENT_ID)]
        assert stored[0][1] in fake_slack.tokens_of(CRO_TEAM)

        # The same state again (a replayed redirect): refused, nothing exchanged or stored.
        again = fake_slack.grant_code(CRO_TEAM, "UCROADMIN")
        assert finish_install(bot, again, state, cookie) == 401
        # A state crobot never issued, even with a matching cookie: refused.
        forged = "0f0f0f0f-0000-4000-8000-000000000000"
        cookie_forged = f"slack-app-oauth-state={forged}"
        assert finish_install(bot, again, forged, cookie_forged) == 401
        # A genuine state from another browser (no cookie): refused too.
        state2, _ = start_install(bot)
        assert finish_install(bot, again, state2, None) == 400
        assert len(fake_slack.calls_to("oauth.v2.access")) == 1
        assert len(installations(world)) == 1


# --- an installation grants nothing by itself -----------------------------------------


def test_cro_user_runs_status_through_the_cros_installation_and_sees_only_apex(
    world: World, fake_slack: FakeSlack
) -> None:
    seed(world, 2)
    with oauth_bot(world, fake_slack) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
        register(world, "Apex CRO", CRO_TEAM)
        fake_slack.add_user("UCRO1", tz="Asia/Kolkata", name="Chitra Cro", team_id=CRO_TEAM)
        fake_slack.add_user("UCROGUEST", name="Gus Guest", team_id=CRO_TEAM, is_restricted=True)
        cro_token = installations(world)[1][1]
        slash = SlashClient(bot, fake_slack)
        before = len(fake_slack.state.calls)

        # In the Slack Connect channel the sponsor linked (C_APEX, from T1).
        answer = slash.send("status", user="UCRO1", channel=C_APEX, team=CRO_TEAM)
        assert answer.status == 200
        assert "APEXDATA" in answer.text
        assert "LABDATA" not in answer.text and "SPONSORDATA" not in answer.text
        # Through the CRO's installation: its token, and nobody else's, was used.
        used = {fake_slack.team_of(c) for c in fake_slack.state.calls[before:]}
        assert used == {CRO_TEAM}
        assert any(
            c.headers.get("Authorization") == f"Bearer {cro_token}"
            for c in fake_slack.calls_to("users.info")
        )
        # Recognised on first use as a member of the organisation that registered it.
        with world.db.read() as s:
            cro = s.scalars(
                select(Person).where(Person.team_id == CRO_TEAM, Person.slack_user_id == "UCRO1")
            ).one()
            assert (cro.org_id, cro.role, cro.display_name) == (
                world.apex_id,
                Role.VENDOR_MEMBER,
                "Chitra Cro",
            )

        # A guest of the CRO's workspace is not a member: told how to get access, no data.
        guest = slash.send("status", user="UCROGUEST", channel=C_APEX, team=CRO_TEAM)
        assert "does not know you" in guest.text and "APEXDATA" not in guest.text
        with world.db.read() as s:
            assert s.scalars(select(Person).where(Person.slack_user_id == "UCROGUEST")).all() == []


def test_a_workspace_that_installed_but_is_not_registered_sees_nothing(
    world: World, fake_slack: FakeSlack
) -> None:
    seed(world, 1)
    with oauth_bot(world, fake_slack) as bot:
        install(bot, fake_slack, OTHER_TEAM, "UOTHERADMIN")
        fake_slack.add_user("UOTHER", tz="Europe/Paris", team_id=OTHER_TEAM)
        slash = SlashClient(bot, fake_slack)
        for text in ("status", "status ONC-301", "action list", "milestone list ONC-301"):
            answer = slash.send(text, user="UOTHER", channel="COTHER", team=OTHER_TEAM)
            assert "does not know you" in answer.text, text
            for word in ("ONC-301", "APEXDATA", "LABDATA", "SPONSORDATA"):
                assert word not in answer.text.replace("status ONC-301", ""), (text, word)
        with world.db.read() as s:
            assert s.scalars(select(Person).where(Person.team_id == OTHER_TEAM)).all() == []


# --- shared channels -------------------------------------------------------------------


def test_a_shared_channel_gets_one_digest_a_period_from_the_copy_that_linked_it(
    world: World, fake_slack: FakeSlack
) -> None:
    clock = Clock(NOW)
    with oauth_bot(world, fake_slack, clock) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
    register(world, "Apex CRO", CRO_TEAM)
    shared = link(world, "CSHARED", SPONSOR_TEAM, "joint:Apex CRO")
    with world.db.write() as s:  # linked once, by its id, whichever side links it
        with pytest.raises(Exception, match="already linked from Slack workspace T1"):
            directory.link_channel(
                s, SYSTEM, team_id=CRO_TEAM, channel_id="CSHARED", study="ONC-301", audience="joint"
            )
    # Both copies' processes run their scheduler against the one database.
    copies = [scheduler(world, fake_slack, clock), scheduler(world, fake_slack, clock)]
    monday = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    for week in range(3):
        clock.set(monday + timedelta(weeks=week))
        for copy in copies:
            copy._digest(shared)
    posts = fake_slack.posted("CSHARED")
    assert len(posts) == 3
    assert {p["posted_by_team"] for p in posts} == {SPONSOR_TEAM}
    keys = [p["metadata"]["event_payload"]["run_key"].split("|")[1] for p in posts]
    assert keys == ["2026-11-30T09:00", "2026-12-07T09:00", "2026-12-14T09:00"]


# --- token rotation ----------------------------------------------------------------------


def test_a_token_about_to_expire_is_rotated_before_a_scheduled_post(
    world: World, fake_slack: FakeSlack
) -> None:
    clock = Clock(datetime(2026, 11, 30, 14, 1, tzinfo=UTC))  # Monday 09:01 in New York
    with oauth_bot(world, fake_slack, clock) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER", expires_in=600)  # 10 minutes
    old = installations(world)[0][1]
    assert old is not None and old.startswith("xoxe.xoxb-")
    before = len(fake_slack.state.calls)
    scheduler(world, fake_slack, clock)._digest(world_link(world, C_SPONSOR))

    calls = fake_slack.state.calls[before:]
    methods = [c.method for c in calls]
    assert "chat.postMessage" in methods
    refresh = methods.index("oauth.v2.access")
    assert refresh < methods.index("chat.postMessage")
    assert calls[refresh].params["grant_type"] == "refresh_token"
    new = installations(world)[0][1]
    assert new not in (None, old) and new in fake_slack.tokens_of(SPONSOR_TEAM)
    post_call = calls[methods.index("chat.postMessage")]
    assert post_call.headers["Authorization"] == f"Bearer {new}"
    # Fresh now (12 h): the next post uses it without another refresh.
    clock.advance(timedelta(weeks=1))
    scheduler(world, fake_slack, clock)._digest(world_link(world, C_SPONSOR))
    assert len(fake_slack.calls_to("oauth.v2.access")) == 2  # the install, one refresh
    assert len(fake_slack.posted(C_SPONSOR)) == 2


def world_link(world: World, channel: str) -> int:
    with world.db.read() as s:
        return int(s.scalars(select(ChannelLink.id).where(ChannelLink.channel_id == channel)).one())


# --- uninstall ---------------------------------------------------------------------------


def uninstalled_event(team: str, event_id: str) -> str:
    return json.dumps(
        {
            "token": "legacy-unused",
            "team_id": team,
            "api_app_id": "A1",
            "event": {"type": "app_uninstalled", "event_ts": "1764500000.000100"},
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1764500000,
        }
    )


def send_event(bot: RunningBot, body: str, *, retry: int = 0, ts: int | None = None) -> int:
    headers = {**signed_headers(body, timestamp=ts), "Content-Type": "application/json"}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    status, _ = post(bot.events_url, body, headers)
    return status


def test_after_app_uninstalled_nothing_more_is_posted_to_that_workspace(
    world: World, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    clock = Clock(datetime(2026, 11, 30, 9, 1, tzinfo=UTC))
    register(world, "Apex CRO", CRO_TEAM)
    home = link(world, "CAPEXHOME", CRO_TEAM, "vendor:Apex CRO")  # in the CRO's workspace
    with oauth_bot(world, fake_slack, clock) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
        sched = scheduler(world, fake_slack, clock)
        sched._digest(home)
        assert [p["posted_by_team"] for p in fake_slack.posted("CAPEXHOME")] == [CRO_TEAM]

        fake_slack.uninstall(CRO_TEAM)
        event = uninstalled_event(CRO_TEAM, "Ev0UNINSTALL")
        sent_at = int(time.time()) - 2
        assert send_event(bot, event, ts=sent_at) == 200
        fake_slack.wait_for("chat.postMessage", count=2)
        # Slack re-sends the event (a new signature): the sponsor is still told once.
        assert send_event(bot, event, retry=1, ts=sent_at + 1) == 200
        _wait_sent(world, f"gone:{CRO_TEAM}")
        assert [team for team, _, _ in installations(world)] == [SPONSOR_TEAM]

    notices = fake_slack.posted(C_SPONSOR)
    assert len(notices) == 1 and notices[0]["posted_by_team"] == SPONSOR_TEAM
    assert "TAPEX" in notices[0]["text"] and "Apex CRO" in notices[0]["text"]

    caplog.set_level(logging.INFO)
    posts_before = len(fake_slack.calls_to("chat.postMessage"))
    for week in (1, 2):
        clock.set(datetime(2026, 11, 30, 9, 1, tzinfo=UTC) + timedelta(weeks=week))
        sched._digest(home)
    assert len(fake_slack.calls_to("chat.postMessage")) == posts_before
    assert len(fake_slack.posted("CAPEXHOME")) == 1
    with world.db.read() as s:
        runs = s.scalars(select(DigestRun).where(DigestRun.channel_link_id == home)).all()
    assert [r.state for r in sorted(runs, key=lambda r: r.id)] == [
        DigestRunState.SENT,
        DigestRunState.SKIPPED,
        DigestRunState.SKIPPED,
    ]
    said = [r for r in caplog.records if "not installed in Slack workspace TAPEX" in r.message]
    assert len(said) == 1


def _wait_sent(world: World, target: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.db.read() as s:
            states = set(s.scalars(select(DigestRun.state).where(DigestRun.target == target)))
        if states == {DigestRunState.SENT}:
            return
        time.sleep(0.02)
    raise AssertionError(f"{target} not sent: {states}")


# --- configuration ------------------------------------------------------------------------


def test_manifest_has_the_scopes_redirect_url_rotation_and_events() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    bot_scopes = re.search(r"\n    bot:\n((?:      - .*\n|      #.*\n)+)", text)
    assert bot_scopes is not None
    listed = re.findall(r"      - (\S+)", bot_scopes.group(1))
    assert tuple(listed) == BOT_SCOPES
    assert re.search(r"redirect_urls:\n\s+- https://\S+/slack/oauth_redirect", text)
    assert "token_rotation_enabled: true" in text
    assert re.search(r"- app_uninstalled\n", text) and re.search(r"- tokens_revoked\n", text)


def test_oauth_settings_are_checked_at_start(world: World, fake_slack: FakeSlack) -> None:
    settings = oauth_settings(world.db.url, fake_slack)
    require_tokens(settings)  # client id, secret and signing secret: fine
    with pytest.raises(ConfigError, match="--socket"):
        require_tokens(settings, socket=True)
    both = settings.model_copy(update={"slack_bot_token": SecretStr("xoxb-1")})
    with pytest.raises(ConfigError, match="both set"):
        require_tokens(both)
    half = settings.model_copy(update={"slack_client_secret": None})
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET is not set"):
        require_tokens(half)


def test_tokens_revoked_deletes_the_workspaces_tokens(world: World, fake_slack: FakeSlack) -> None:
    with oauth_bot(world, fake_slack) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
        fake_slack.uninstall(CRO_TEAM)
        body = json.dumps(
            {
                "team_id": CRO_TEAM,
                "api_app_id": "A1",
                "event": {"type": "tokens_revoked", "tokens": {"bot": ["UBOTTAPEX"]}},
                "type": "event_callback",
                "event_id": "Ev0REVOKED",
                "event_time": 1764500000,
            }
        )
        assert send_event(bot, body) == 200
        assert [team for team, _, _ in installations(world)] == [SPONSOR_TEAM]


# --- time zones across workspaces ---------------------------------------------------------


def test_a_strangers_zone_falls_back_to_the_recorded_one_then_the_channels(
    world: World, fake_slack: FakeSlack
) -> None:
    from crobot.bot.workspaces import Workspaces
    from crobot.handlers.user_tz import user_timezone
    from crobot.services.user_tz import remember_timezone

    register(world, "Apex CRO", CRO_TEAM)
    world.add_person(CRO_TEAM, "UEXT", "Apex CRO", "vendor_member")
    fake_slack.add_user("UEXT", tz="Asia/Tokyo", team_id=CRO_TEAM)
    with oauth_bot(world, fake_slack) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        settings = oauth_settings(world.db.url, fake_slack)
        runtime = Runtime(world.db, now=lambda: NOW)
        runtime.bot_token = Workspaces(settings, world.db).bot_token
        sponsor_side = WebClient(token=installations(world)[0][1], base_url=fake_slack.base_url)
        ext = world.actor("UEXT", team_id=CRO_TEAM)

        # Only the sponsor's copy is installed: Slack shows the user as a stranger there.
        assert user_timezone(runtime, sponsor_side, ext, channel_tz="Asia/Kolkata") == (
            "Asia/Kolkata"  # nothing recorded: the channel's zone
        )
        asked = fake_slack.calls_to("users.info")[-1]
        assert fake_slack.team_of(asked) == SPONSOR_TEAM
        with world.db.write() as s:  # Slack's answer of three days ago, through their side
            remember_timezone(s, CRO_TEAM, "UEXT", "Asia/Singapore", now=NOW - timedelta(days=3))
        assert user_timezone(runtime, sponsor_side, ext, channel_tz="Asia/Kolkata") == (
            "Asia/Singapore"  # the zone recorded for them
        )

        # The CRO installs its copy: Slack is asked through it, and answers with the zone.
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
        assert user_timezone(runtime, sponsor_side, ext, channel_tz="Asia/Kolkata") == "Asia/Tokyo"
        assert fake_slack.team_of(fake_slack.calls_to("users.info")[-1]) == CRO_TEAM


def test_org_update_registers_a_workspace_and_grid(cli_env: object, world: World) -> None:
    from crobot.bot.cli import main

    assert main(["org", "update", "Apex CRO", "--slack-team", CRO_TEAM]) == 0
    assert main(["org", "update", "CentraLab", "--enterprise", "E0LABGRID"]) == 0
    # A workspace or Grid belongs to one organisation; T1 holds other organisations' people.
    assert main(["org", "update", "CentraLab", "--slack-team", CRO_TEAM]) != 0
    assert main(["org", "update", "Helix Pharma", "--enterprise", "E0LABGRID"]) != 0
    assert main(["org", "update", "Helix Pharma", "--slack-team", "T1"]) != 0
    assert main(["org", "add", "Beta CMO", "--kind", "cmo", "--enterprise", "E0LABGRID"]) != 0
    with world.db.read() as s:
        from crobot.services.directory import member_org

        assert getattr(member_org(s, CRO_TEAM, None), "name", None) == "Apex CRO"
        assert getattr(member_org(s, "T0ANY", "E0LABGRID"), "name", None) == "CentraLab"
        assert member_org(s, "T0ANY", "E0OTHER") is None


def test_an_external_users_click_is_judged_by_their_own_workspace_and_user(
    world: World, fake_slack: FakeSlack
) -> None:
    """A user of the CRO's workspace whose user id looks like the sponsor approver's clicks
    Approve on the sponsor's request (a shared channel): refused, judged as TAPEX:UAPPROVER."""
    from crobot.storage.models import Approval, ApprovalState, AuditEvent
    from tests.approval_support import (
        block_action,
        pending_kpi,
        posted_request,
        send,
        wait_until,
    )

    register(world, "Apex CRO", CRO_TEAM)
    with oauth_bot(world, fake_slack) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
        install(bot, fake_slack, CRO_TEAM, "UCROADMIN")
        fake_slack.add_user("UAPPROVER", tz="America/New_York", team_id=SPONSOR_TEAM)
        aid = pending_kpi(world, 12)
        msg: dict[str, object] = {**posted_request(bot, world, aid), "text": "", "blocks": []}
        assert fake_slack.posted(C_SPONSOR)[0]["posted_by_team"] == SPONSOR_TEAM

        # Received by the sponsor's installation (the message's workspace), from a CRO user.
        outsider = block_action("approval_approve", aid, user="UAPPROVER", msg=msg)
        outsider["user"]["team_id"] = CRO_TEAM
        assert send(bot, outsider)[0] == 200
        told = wait_until(lambda: fake_slack.calls_to("chat.postEphemeral"))
        assert told[0].params["user"] == "UAPPROVER"
        assert fake_slack.team_of(told[0]) == SPONSOR_TEAM
        with world.db.read() as s:
            assert s.get_one(Approval, aid).state == ApprovalState.PENDING
            refused = s.scalars(
                select(AuditEvent.actor).where(AuditEvent.action == "approval.refused")
            ).all()
            assert list(refused) == [f"{CRO_TEAM}:UAPPROVER"]
            # Not made a member through another workspace's installation either.
            assert s.scalars(select(Person).where(Person.team_id == CRO_TEAM)).all() == []

        # The sponsor's approver (T1, UAPPROVER) decides it.
        mine = block_action("approval_approve", aid, user="UAPPROVER", msg=msg)
        assert send(bot, mine)[0] == 200
        decided = wait_until(lambda: fake_slack.calls_to("chat.update"))
        assert fake_slack.team_of(decided[0]) == SPONSOR_TEAM
        with world.db.read() as s:
            assert s.get_one(Approval, aid).state == ApprovalState.APPROVED


def test_an_org_wide_grid_installation_serves_the_grids_workspaces(
    world: World, fake_slack: FakeSlack
) -> None:
    from slack_sdk.oauth.installation_store import Installation

    from crobot.bot.workspaces import Workspaces
    from crobot.services.runtime import NotInstalled

    with world.db.write() as s:
        directory.update_org(s, SYSTEM, name="CentraLab", slack_enterprise_id="E0LAB")
    world.add_person("T0LABEU", "ULABEU", "CentraLab", "vendor_member")
    workspaces = Workspaces(oauth_settings(world.db.url, fake_slack), world.db)
    workspaces.store.save(
        Installation(
            app_id="A1",
            enterprise_id="E0LAB",
            team_id=None,
            bot_token="xoxb-grid-token",
            bot_user_id="UBOTGRID",
            user_id="ULABADMIN",
            is_enterprise_install=True,
        )
    )
    assert workspaces.bot_token("T0LABEU") == "xoxb-grid-token"
    with pytest.raises(NotInstalled):
        workspaces.bot_token("T0ELSEWHERE")
    workspaces.delete(enterprise_id="E0LAB", team_id=None)
    with pytest.raises(NotInstalled):
        workspaces.bot_token("T0LABEU")


def test_the_audit_anchor_is_posted_through_the_sponsor_workspaces_installation(
    world: World, fake_slack: FakeSlack
) -> None:
    """Several workspaces: the daily anchor goes out with the token of the workspace that
    linked the sponsor channel (it was skipped as "not installed" before)."""
    clock = Clock(datetime(2026, 11, 30, 14, 1, tzinfo=UTC))
    with oauth_bot(world, fake_slack, clock) as bot:
        install(bot, fake_slack, SPONSOR_TEAM, "UAPPROVER")
    before = len(fake_slack.state.calls)
    outcomes = scheduler(world, fake_slack, clock).delivery.send_anchors("2026-11-30")
    assert [o.state for o in outcomes] == ["sent"]
    posts = [c for c in fake_slack.state.calls[before:] if c.method == "chat.postMessage"]
    assert [c.params["channel"] for c in posts] == [C_SPONSOR]
    token = installations(world)[0][1]
    assert token is not None and posts[0].headers["Authorization"] == f"Bearer {token}"
