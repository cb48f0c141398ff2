"""Audiences as README's "Audiences" section states them, through signed `/cro` requests.

Reproduces two findings: the sponsor's own milestones were forced `shared`, so every
vendor saw sponsor-internal milestones; and a `joint` channel without an organisation
showed every vendor's non-shared rows in its digest while `/cro` in the same channel
narrowed each vendor to its own rows. Now the sponsor's milestones are private unless
added with `--shared`, a multi-vendor joint channel shows shared approved items only, and
the digest and `/cro` give the same view for the same reader there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import APEX_PM, APPROVER, C_APEX, C_JOINT, C_LAB, C_SPONSOR, LAB_PM, World
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient, slash_bot

DUE = "planned:2026-12-04"  # within the digest's 14 days


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    with slash_bot(world.db, fake_slack) as client:
        yield client


def _added(slash: SlashClient, text: str, user: str, channel: str) -> None:
    answer = slash.send(text, user, channel)
    assert "added milestone" in answer.text, answer.text


def test_sponsor_milestones_are_private_unless_shared(slash: SlashClient) -> None:
    _added(slash, f'milestone add "Budget review" {DUE}', APPROVER, C_SPONSOR)
    _added(slash, f'milestone add "Investigator meeting" {DUE} --shared', APPROVER, C_SPONSOR)
    for user, channel in ((APEX_PM, C_APEX), (LAB_PM, C_LAB)):
        listed = slash.send("milestone list", user, channel).text
        assert "Investigator meeting" in listed, (user, listed)
        assert "Budget review" not in listed, (user, listed)
    sponsor_view = slash.send("milestone list", APPROVER, C_SPONSOR).text
    assert "Budget review" in sponsor_view and "Investigator meeting" in sponsor_view


def test_a_multi_vendor_joint_channel_shows_shared_items_to_everyone_alike(
    slash: SlashClient,
) -> None:
    _added(slash, f'milestone add "Apex site visits" {DUE}', APEX_PM, C_APEX)
    _added(slash, f'milestone add "Lab kit shipment" {DUE}', LAB_PM, C_LAB)
    _added(slash, f'milestone add "Investigator meeting" {DUE} --shared', APPROVER, C_SPONSOR)
    views = {
        "apex /cro": slash.send("milestone list", APEX_PM, C_JOINT).text,
        "lab /cro": slash.send("milestone list", LAB_PM, C_JOINT).text,
        "sponsor /cro": slash.send("milestone list", APPROVER, C_JOINT).text,
        "digest": slash.send("digest preview", APPROVER, C_JOINT).text,
    }
    for who, text in views.items():
        assert "Investigator meeting" in text, (who, text)
        assert "Apex site visits" not in text, (who, text)
        assert "Lab kit shipment" not in text, (who, text)
    # Each vendor still sees its own item in its own channel.
    assert "Apex site visits" in slash.send("milestone list", APEX_PM, C_APEX).text
    assert "Lab kit shipment" in slash.send("milestone list", LAB_PM, C_LAB).text
