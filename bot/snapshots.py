"""What the bot remembers for a while, in memory: keys recently seen, results behind Show evidence."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from bot.replies import SnapshotGone


class Recent:
    """Keys seen in the last `window_s` seconds, in memory: a retried event or a double click finds
    its key. Used where a repeat would only post twice; writes are guarded in the store."""

    def __init__(self, window_s: float = 3600.0, size: int = 10_000) -> None:
        self.window_s, self.size = window_s, size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time `key` is seen within the window."""
        now = time.monotonic()
        with self._lock:
            at = self._seen.get(key)
            if at is not None and now - at < self.window_s:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
        return True


class Snapshots:
    """Recent results behind each Show evidence button, kept in memory, newest `size` only."""

    def __init__(self, size: int = 200) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, kind: str, target: str, data: dict[str, Any]) -> str:
        key = uuid.uuid4().hex[:16]
        snapshot = {
            "kind": kind,
            "target": target,
            "snapshot_at": datetime.now(UTC).isoformat(),
            "data": data,
        }
        with self._lock:
            self._items[key] = snapshot
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> dict[str, Any]:
        with self._lock:
            snapshot = self._items.get(key)
        if snapshot is None:
            raise SnapshotGone()
        return snapshot
