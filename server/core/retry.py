"""When to try a failed callback again: the configured schedule with jitter, or the receiver's word."""

from __future__ import annotations

import random
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

# A receiver's Retry-After is honoured up to this; a longer one is taken as this.
RETRY_AFTER_CAP_S = 6 * 3600.0
JITTER = 0.2  # ±20 %, so receivers that failed together are not retried together


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `now` that a Retry-After header asks for (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def next_delay(failures: int, schedule: Sequence[float], retry_after_s: float | None) -> float | None:
    """Seconds until the next attempt after `failures` failed ones in a row; None when exhausted."""
    if failures > len(schedule):
        return None
    if retry_after_s is not None:
        return min(max(retry_after_s, 1.0), RETRY_AFTER_CAP_S)
    base = schedule[failures - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter, not a secret
