"""A signed request replayed within Slack's 5-minute window is refused, once accepted.

Reproduces the finding: the same signed `/cro action add` sent three times created three
actions. Now the first is executed and the two copies get 401 with nothing stored, on
every replica (the remembered signatures are in the database).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from crobot.storage.models import ActionItem
from tests.conftest import APEX_PM, C_APEX, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post, signed_headers
from tests.slash_helpers import SlashClient, slash_bot


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    with slash_bot(world.db, fake_slack) as client:
        yield client


def _actions(world: World) -> int:
    with world.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ActionItem)) or 0)


def test_a_replayed_request_is_refused(slash: SlashClient, world: World) -> None:
    reply_path = "/respond/replay"
    body = command_body(
        f'action add "Send the monitoring report" <@{APEX_PM}> due:2026-12-18',
        user_id=APEX_PM,
        channel_id=C_APEX,
        response_url=slash.respond_root.rstrip("/") + reply_path,
    )
    headers = signed_headers(body)
    first = post(slash.bot.events_url, body, headers)
    assert first[0] == 200
    slash.fake.wait_for(reply_path, timeout=10)  # the first one's answer: it is done
    again = [post(slash.bot.events_url, body, headers) for _ in range(2)]
    assert [status for status, _ in again] == [401, 401]
    assert _actions(world) == 1
    assert len(slash.fake.calls_to(reply_path)) == 1


def test_the_same_command_signed_again_is_a_new_request(slash: SlashClient, world: World) -> None:
    """Two genuine requests (each with its own trigger_id, as Slack sends them) both run."""
    for _ in range(2):
        answer = slash.send(
            f'action add "Send the monitoring report" <@{APEX_PM}> due:2026-12-18',
            APEX_PM,
            C_APEX,
        )
        assert answer.status == 200 and ":warning:" not in answer.text
    assert _actions(world) == 2


def test_expired_signatures_are_pruned_once_a_minute_and_still_refused_until_then(
    world: World,
) -> None:
    """The guard deletes signatures older than KEEP at most every PRUNE_EVERY; one kept a
    little longer is still a replay, and after the next prune it is gone."""
    from datetime import UTC, datetime, timedelta

    from crobot.services.replay import KEEP, PRUNE_EVERY, ReplayGuard
    from crobot.storage.models import SeenRequest

    guard = ReplayGuard()
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def seen(sig: str, at: datetime) -> bool:
        with world.db.write() as s:
            return guard.first_sighting(s, sig, now=at)

    def stored() -> set[str]:
        with world.db.read() as s:
            return set(s.scalars(select(SeenRequest.signature)))

    assert seen("v0=old", t0)
    later = t0 + KEEP + timedelta(seconds=1)  # "old" has expired; the first call prunes
    assert seen("v0=a", later)
    assert stored() == {"v0=a"}
    assert seen("v0=b", later + timedelta(seconds=1))
    # Expired, but within PRUNE_EVERY of the last prune: kept, and a repeat is refused.
    assert seen("v0=c", later + PRUNE_EVERY - timedelta(seconds=1))
    assert not seen("v0=a", later + PRUNE_EVERY - timedelta(seconds=1))
    assert stored() == {"v0=a", "v0=b", "v0=c"}
    # The next prune deletes only what is older than KEEP at that moment.
    assert seen("v0=d", later + KEEP + timedelta(seconds=1, milliseconds=500))
    assert stored() == {"v0=c", "v0=d"}
