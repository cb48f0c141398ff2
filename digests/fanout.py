"""Many channels' digests on a few threads, a digest's thread replies when its channel allows.

A digest with detail is a top-level message and then a reply per long section, in its
thread, all to one channel: at Slack's ~1 message per second per channel, a thread that
slept on the pacer for each reply would spend its time waiting (issue 18: 4,200 messages
for 1,000 digests, most of the fan-out asleep). Here the replies of a sent digest wait in
a queue ordered by when their channel's pace allows the next one, and the threads go on
composing and posting other channels' digests meanwhile; a due reply is taken before the
next digest. One channel's replies stay one queue entry, posted in order, one at a time.

Nothing here decides who posts: every row is claimed (or taken over by compare-and-set)
by `Delivery`, so a fan-out in each of several processes or replicas stays exactly once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crobot.digests.delivery import Delivery, Outcome
    from crobot.storage.models import DigestRun


@dataclass(order=True)
class _Replies:
    at: float  # monotonic time the channel's pace allows the next reply
    seq: int  # first come, first served among equals
    channel: str = field(compare=False)
    rows: list[DigestRun] = field(compare=False)


class FanOut:
    """Deliver `items` ((link id, period key)) on `workers` threads, and every sent
    digest's thread replies; `run` returns the digests' outcomes in `items` order."""

    def __init__(self, delivery: Delivery, items: list[tuple[int, str]], workers: int) -> None:
        self._items = deque(enumerate(items))
        self._outcomes: list[Outcome | None] = [None] * len(items)
        self._workers = max(1, min(workers, len(items)))
        self._replies: list[_Replies] = []
        self._seq = itertools.count()
        self._busy = 0  # threads holding a digest whose replies may still be queued
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._delivery = delivery
        self._pacer = delivery.pacer

    def run(self) -> list[Outcome]:
        # A copy of the delivery whose sent digests queue their replies here.
        self._delivery = replace(self._delivery, defer_thread=self._queue)
        if self._workers == 1:
            self._work()
        else:
            threads = [
                threading.Thread(target=self._work, name=f"crobot-fanout-{n}", daemon=True)
                for n in range(self._workers)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if self._error is not None:
            raise self._error
        done = [o for o in self._outcomes if o is not None]
        assert len(done) == len(self._outcomes)
        return done

    def _queue(self, channel: str, rows: list[DigestRun]) -> None:
        """`Delivery.defer_thread`: a sent digest's reply rows, posted when paced."""
        with self._cond:
            at = self._pacer.ready_at(channel)
            heapq.heappush(self._replies, _Replies(at, next(self._seq), channel, rows))
            self._cond.notify_all()

    def _work(self) -> None:
        try:
            while (task := self._next()) is not None:
                try:
                    self._do(task)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()
        except BaseException as exc:  # re-raised by run(), in the caller's thread
            with self._cond:
                self._error = self._error or exc
                self._items.clear()
                self._replies.clear()
                self._cond.notify_all()

    def _next(self) -> _Replies | tuple[int, tuple[int, str]] | None:
        """A due reply first, else the next digest, else wait for a reply to fall due
        (or for a busy thread to queue some); None when all is done."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._replies and self._replies[0].at <= now:
                    self._busy += 1
                    return heapq.heappop(self._replies)
                if self._items:
                    self._busy += 1
                    return self._items.popleft()
                if not self._replies and self._busy == 0:
                    return None
                wait = self._replies[0].at - now if self._replies else None
                self._cond.wait(wait)

    def _do(self, task: _Replies | tuple[int, tuple[int, str]]) -> None:
        if isinstance(task, _Replies):
            first, *rest = task.rows
            self._delivery.deliver_thread_row(first)
            if rest:
                self._queue(task.channel, rest)
            else:
                self._delivery.details.pop(_parent(first), None)
            return
        index, (link_id, period) = task
        self._outcomes[index] = self._delivery.send_link(link_id, period)


def _parent(reply: DigestRun) -> int:
    """A thread reply row's parent run id (its target is `thread:<id>`)."""
    return int(reply.target.partition(":")[2])
