"""Several workspaces: a user of a registered workspace is recognised on first use.

An installation grants nothing by itself (anyone may install a distributed app). When a
request comes through the installation of the user's own workspace, and an admin has
registered that workspace (or its Enterprise Grid org) to an organisation, a user crobot
does not know yet becomes a member of that organisation (`services.directory.
enrol_member`). Guests (`is_restricted`, `is_ultra_restricted`), bots, deactivated users,
and users of workspaces nobody registered are not; nothing is stored for them.
"""

from __future__ import annotations

import logging
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crobot.handlers.middleware import Identity
from crobot.services.directory import enrol_member, member_org
from crobot.services.runtime import Runtime
from crobot.services.user_tz import remember_timezone, valid_zone
from crobot.storage.models import Person

log = logging.getLogger(__name__)


class Members:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._known: set[tuple[str, str]] = set()  # registered: no more queries for them
        self._lock = threading.Lock()

    def recognise(self, client: WebClient, who: Identity, enterprise_id: str | None) -> None:
        key = (who.team_id, who.user_id)
        if key in self._known:
            return
        with self.runtime.db.read() as s:
            known = s.scalars(
                select(Person.id).where(
                    Person.team_id == who.team_id, Person.slack_user_id == who.user_id
                )
            ).first()
            org = None if known is not None else member_org(s, who.team_id, enterprise_id)
        if known is not None:
            self._remember(key)
            return
        if org is None:
            return  # an unregistered workspace: its users see nothing
        try:
            user = client.users_info(user=who.user_id).get("user") or {}
        except (SlackApiError, OSError) as exc:
            log.warning("users.info for a first-time user failed: %s", type(exc).__name__)
            return
        if _not_a_member(user, who.team_id, enterprise_id):
            log.info("%s:%s is a guest or not a person; not made a member", *key)
            return
        name = str(user.get("real_name") or user.get("name") or who.user_id)
        try:
            with self.runtime.db.write() as s:
                person = enrol_member(s, who.team_id, who.user_id, enterprise_id, display_name=name)
                if person is not None and (tz := valid_zone(user.get("tz"))):
                    remember_timezone(s, who.team_id, who.user_id, tz, now=self.runtime.now())
        except IntegrityError:
            pass  # a concurrent request enrolled them first
        else:
            if person is not None:
                log.info("%s:%s recognised as %s", *key, person.role.value)
        self._remember(key)

    def _remember(self, key: tuple[str, str]) -> None:
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known.add(key)


def _not_a_member(user: dict[str, object], team_id: str, enterprise_id: str | None) -> bool:
    """Guests, bots, deactivated accounts, and anyone Slack shows from another workspace
    (inside an Enterprise Grid a user's home workspace may be another of the Grid's)."""
    flags = ("is_restricted", "is_ultra_restricted", "is_bot", "deleted", "is_stranger")
    if any(user.get(flag) for flag in flags):
        return True
    home = user.get("team_id")
    return enterprise_id is None and bool(home) and home != team_id
