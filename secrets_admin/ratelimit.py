"""Per-user rate limits counted in Django's cache (fixed windows).

Used for reveals (ASVS 5.0 2.4.1 "anti-automation"): a person who reveals more than
``PORTAL_REVEAL_RATE`` values per window is refused with a 429 and told when to try again.
With several app instances the cache must be shared (``CACHE_URL``, Redis), as for sessions.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``seconds``. ``text`` is the setting it came from (for messages)."""

    count: int
    seconds: int
    text: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"<count>/<unit>"`` or ``"<count>/<n><unit>"``, unit one of ``s m h d``
        (``"30/m"``, ``"200/h"``, ``"5/10s"``). Raises ``ValueError`` naming the bad text."""
        match = _RATE.match(text)
        count, multiple = (int(match.group(1)), int(match.group(2) or 1)) if match else (0, 0)
        if not match or count < 1 or multiple < 1:
            raise ValueError(
                f"{text!r} is not a rate: write <count>/<unit>, e.g. 30/m (units s, m, h, d)"
            )
        return cls(count, multiple * _UNITS[match.group(3)], text.strip())

    def describe(self) -> str:
        """``"30 per minute"``, ``"5 per 10 seconds"``."""
        names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
        if self.seconds in names:
            return f"{self.count} per {names[self.seconds]}"
        return f"{self.count} per {self.seconds} seconds"


@dataclass(frozen=True)
class Limited:
    """A refused event: the rate that was exceeded and seconds until the window ends."""

    rate: Rate
    retry_after: int
    #: What was counted, for the message ("reveals", "changes").
    events: str = "reveals"

    @property
    def message(self) -> str:
        return (
            f"Too many {self.events}: the limit is {self.rate.describe()}. "
            f"Try again in {self.retry_after} s. Ask an admin if you need more."
        )


def reveal_rate() -> Rate:
    """The configured reveal rate (``PORTAL_REVEAL_RATE``); the system check validates it."""
    return Rate.parse(settings.PORTAL_REVEAL_RATE)


def write_rate() -> Rate:
    """The configured rate of write steps per person (``PORTAL_WRITE_RATE``); checked at start-up."""
    return Rate.parse(settings.PORTAL_WRITE_RATE)


def consume(scope: str, who: str, rate: Rate, *, now: float | None = None) -> Limited | None:
    """Count one event of ``scope`` (e.g. ``"reveal"``) for ``who`` (e.g. a user id).

    Returns ``None`` when it is within ``rate``, else :class:`Limited`. Refused events count too,
    so hammering does not open the window early. Windows are fixed (aligned to multiples of
    ``rate.seconds``): at most ``2 * count`` events can fall in any span of ``seconds``.
    """
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    key = f"portal:rate:{scope}:{who}:{window}"
    cache.add(key, 0, timeout=rate.seconds + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=rate.seconds + 1)
        used = 1
    if used <= rate.count:
        return None
    retry_after = max(1, int((window + 1) * rate.seconds - now))
    if used == rate.count + 1:
        logger.warning("rate limit %s reached by user %s (%s)", scope, who, rate.text)
    return Limited(rate=rate, retry_after=retry_after)
