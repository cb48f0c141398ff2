"""Who is asking: the Slack user resolved to a Person (or nobody we know)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.storage.models import Person, Role

# A Slack user is (workspace, user): the same user id in another workspace is someone else.
UserKey = tuple[str, str]


@dataclass(frozen=True)
class Actor:
    team_id: str
    user_id: str
    person: Person | None = None
    # The CLI and the system itself act with an operator's authority, not a Slack user's.
    trusted: bool = False
    # Who really acts, when not the Slack user: `cli:<os account>`, or with an impersonated
    # user `console:<os account> as <team>:<user>`. Audited with every event.
    operator: str | None = None

    @property
    def label(self) -> str:
        """Stable audit identity: team and user id (Slack Connect users share channels)."""
        return f"{self.team_id}:{self.user_id}"

    @property
    def key(self) -> UserKey:
        return (self.team_id, self.user_id)

    @property
    def org_id(self) -> int | None:
        return self.person.org_id if self.person else None

    @property
    def role(self) -> Role | None:
        return self.person.role if self.person else None


SYSTEM = Actor(team_id="crobot", user_id="system", trusted=True)


def resolve_actor(session: Session, team_id: str, user_id: str) -> Actor:
    person = session.scalars(
        select(Person).where(Person.team_id == team_id, Person.slack_user_id == user_id)
    ).one_or_none()
    return Actor(team_id=team_id, user_id=user_id, person=person)
