"""A fixed local time zone for the logger's time fields (``%z``, ctime)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def local_zone(tz: str) -> Iterator[None]:
    """``TZ`` set to a POSIX zone for the duration, then restored."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
