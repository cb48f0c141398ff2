"""A one-line progress indicator on standard error for long CLI work."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, *, every: float = 0.5) -> None:
        self.label = label
        self.every = every
        self._last = 0.0
        self._shown = False
        self.tty = sys.stderr.isatty()

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - self._last < self.every:
            return
        self._last = now
        pct = 100 * done // total if total else 100
        end = "\r" if self.tty else "\n"
        print(f"{self.label}: {done}/{total} ({pct}%)", end=end, file=sys.stderr, flush=True)
        self._shown = True

    def step(self, message: str) -> None:
        print(f"{self.label}: {message}", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._shown and self.tty:
            print(file=sys.stderr)
