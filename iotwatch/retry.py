"""The one backoff policy: capped exponential delays with jitter, and Retry-After parsing.

>>> backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.0)
>>> [backoff.next_delay() for _ in range(5)]
[1.0, 2.0, 4.0, 8.0, 8.0]
>>> backoff.reset(); backoff.next_delay()
1.0
>>> parse_retry_after("120", now=0.0)
120.0
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime


class Backoff:
    """Delays of ``initial_s * multiplier**n`` capped at ``max_s``, each +/- ``jitter`` share."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, multiplier: float = 2.0,
                 jitter: float = 0.2, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self.max_s, self.initial_s * self.multiplier ** self.attempts)
        self.attempts += 1
        if self.jitter:
            base *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return min(base, self.max_s)

    def delay_for(self, attempt: int) -> float:
        """The delay after ``attempt`` failures (0-based), for stateless callers such as an outbox."""
        base = min(self.max_s, self.initial_s * self.multiplier ** attempt)
        if self.jitter:
            base *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return min(base, self.max_s)

    def reset(self) -> None:
        """Call after a success so the next failure starts from ``initial_s`` again."""
        self.attempts = 0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta seconds or HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None
