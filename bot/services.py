"""What the listeners and workflows share: readiness per thread, the pools, metrics, access, snapshots."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from bot.access import Access
from bot.observability import Metrics
from bot.pools import Pools
from bot.snapshots import Snapshots
from checks.config import Config
from checks.secrets import Redactor
from runbooks.readiness import Readiness

ACK_WORKERS = 16  # ack functions only: none calls Slack or a store


class Services:
    """What the listeners use: readiness (config, store), the pools, metrics, access, snapshots.

    Bolt acks on `ack_pool`, which runs only ack functions (no Web API call, no store), so an ack
    never waits on Slack or a database; lazy listeners run on `pool`, which admits checks and
    triages to a bounded pool of their own and gives events and modal submissions another.
    SQLite connections must not be shared between threads that use them at once: `readiness` is
    a Readiness per thread, each with its own connection to the same database (WAL, so readers
    never wait for the writer).
    """

    def __init__(self, readiness: Readiness, *, ack_workers: int = ACK_WORKERS) -> None:
        self._home, self._owner = readiness, threading.get_ident()
        self._local = threading.local()
        self.ack_pool = ThreadPoolExecutor(ack_workers, thread_name_prefix="lsready-ack")
        self.pool = Pools()
        self.metrics = Metrics()
        self.snapshots = Snapshots()
        self.access: Access | None = None
        self.redactor: Redactor = readiness.config.redactor()

    @property
    def config(self) -> Config:
        return self._home.config

    @property
    def shared(self) -> Readiness:
        """The first Readiness, for what needs no database (targets, catalog, durations): usable
        from any thread without opening a connection, so before an ack."""
        return self._home

    @property
    def readiness(self) -> Readiness:
        """This thread's Readiness: shared config and catalog, its own database connection."""
        if threading.get_ident() == self._owner:
            return self._home
        mine = getattr(self._local, "readiness", None)
        if mine is None:
            mine = self._local.readiness = self._home.open_for_thread()
        return mine

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.ack_pool.shutdown(wait=False, cancel_futures=True)
