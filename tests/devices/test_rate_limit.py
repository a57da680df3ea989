"""The per-device token bucket, on a clock the test controls."""
from __future__ import annotations

import pytest

from devices.rate_limit import RateLimiter


def test_a_device_gets_its_burst_then_its_rate_and_others_are_untouched():
    limit = RateLimiter(per_s=2.0, burst=5)
    assert [limit.allow("A", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limit.allow("B", 0.0)                                  # another device: its own bucket
    assert limit.allow("A", 0.5) and not limit.allow("A", 0.5)     # half a second: one more message
    assert [limit.allow("A", 10.0) for _ in range(6)] == [True] * 5 + [False]    # refilled, not beyond the burst
    assert limit.refused == 4


def test_quiet_devices_are_forgotten_and_bad_settings_refused():
    limit = RateLimiter(per_s=1.0, burst=3)
    limit.allow("A", 0.0)
    limit.allow("B", 100.0)                                        # A's bucket is full again by now
    assert set(limit._buckets) == {"B"}
    with pytest.raises(ValueError):
        RateLimiter(per_s=0, burst=3)
