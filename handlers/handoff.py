"""Hand a value from a listener's ack function to its lazy listeners, through the context.

`bot.app.create_app` sets Bolt's `process_before_response=True`. Bolt then runs the ack
function to completion, and only afterwards copies the request (its context included)
for each lazy listener and starts them; the HTTP response goes out once they are
started. So whatever the ack function put in the context is already in the copy a lazy
listener gets: nothing to wait for, no registry keyed by request, nothing to expire.
When the ack function put nothing there (it answered in the ack, or it failed), the
lazy listener finds nothing and has nothing to do.

Bolt's copy is a deep copy; a `Handoff` is shared by reference instead, because what it
carries (a plan holding a WebClient and ORM rows) must not be copied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from slack_bolt import BoltContext

log = logging.getLogger(__name__)
T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, value: T) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, object]) -> Handoff[T]:
        return self


def hand_over(context: BoltContext, key: str, value: T) -> None:
    """In the ack function: leave `value` for this request's lazy listeners."""
    context[key] = Handoff(value)


def take_over(context: BoltContext, key: str, kind: type[T]) -> T | None:
    """In a lazy listener: what the ack function left under `key`, or None."""
    handoff = context.get(key)
    if isinstance(handoff, Handoff) and isinstance(handoff.value, kind):
        return handoff.value
    return None


def after_ack(context: BoltContext, work: Callable[[], None]) -> None:
    """In an ack function: run `work` on Bolt's listener threads once the ack is answered.

    What a lazy listener does, for a listener that needs it only for some requests: Bolt
    starts every registered lazy listener for every request (a deep copy of the request,
    a task on the executor), even when the ack already answered. Submitted from the ack
    function, `work` may start before the response is written, as a lazy listener may;
    it is on the same executor, so waiting for the executor waits for it too.
    """

    def run() -> None:
        try:
            work()
        except Exception:  # nobody else would see it: the ack has been answered
            log.exception("work after the ack failed")

    context.listener_runner.listener_executor.submit(run)
