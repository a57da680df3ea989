"""Per-device rate limiting (限流) in the ingest worker: a token bucket per device id, so one
device flooding the broker is refused message by message (each one dead-lettered with its
reason, nothing lost) while every other device goes on as before.

The burst is generous on purpose: a device that buffered readings while its network was down,
or a backlog the broker kept while the workers were away, arrives all at once and is fine."""
from __future__ import annotations

import time


class RateLimiter:
    PRUNE_EVERY_S = 60.0

    def __init__(self, per_s: float, burst: float):
        if per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least one message")
        self.per_s, self.burst = per_s, burst
        self._buckets: dict[str, list[float]] = {}         # key → [tokens, when last filled]
        self._next_prune = 0.0
        self.refused = 0

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [self.burst - 1, now]
            self._prune(now)
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.per_s)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return True
        bucket[0] = tokens
        self.refused += 1
        return False

    def _prune(self, now: float) -> None:
        """Forget buckets that have filled up again: only devices heard lately take memory."""
        if now < self._next_prune:
            return
        self._next_prune = now + self.PRUNE_EVERY_S
        full_after = self.burst / self.per_s
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full_after}
