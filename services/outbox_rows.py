"""Outbox rows written inside a domain transaction: unclaimed, so they exist exactly when
the change that caused them committed, and the first deliverer claims them by
compare-and-set (digests/delivery.py `resume_pending`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from crobot.storage.models import DigestRun, DigestRunState, utcnow

KEY_LENGTH = 80  # digest_runs.period_key


def enqueue(session: Session, target: str, key: str) -> None:
    now = utcnow()
    session.add(
        DigestRun(
            target=target,
            period_key=key[:KEY_LENGTH],
            state=DigestRunState.PENDING,
            attempts=0,
            claimed_by=None,
            claimed_at=now,
            created_at=now,
        )
    )
    session.flush()
