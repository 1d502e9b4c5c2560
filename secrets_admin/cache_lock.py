"""A lock held in the shared cache: one holder across processes and instances (the cache is the
one thing they all share; ``cache.add`` sets a key only when it is absent, atomically in Redis and
in Django's other backends).

Used where two holders at once would be wasteful or would overwrite each other's work, never
for correctness of the audit chain or of a write (those rely on the database's row lock and on
Secrets Manager's compare-and-swap).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache

#: How often a waiting holder tries again, in seconds.
POLL_SECONDS = 0.02


@contextmanager
def cache_lock(key: str, *, seconds: int, wait: float = 0.0) -> Iterator[bool]:
    """Hold ``key`` in the shared cache for the ``with`` block: yields ``True`` when it is held,
    ``False`` when another holder kept it for ``wait`` seconds (default: no wait).

    The key expires after ``seconds`` even if its holder dies. On exit it is deleted only if it
    still holds this holder's token, so a lock that expired and was taken by another stays
    theirs.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    held = bool(cache.add(key, token, seconds))
    while not held and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        held = bool(cache.add(key, token, seconds))
    try:
        yield held
    finally:
        if held and cache.get(key) == token:
            cache.delete(key)
