"""The big-table bench's model of when a week of runs was written (bench/clickhouse.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from bench.clickhouse import slices


@pytest.mark.parametrize("clock", ["00:05", "00:40", "06:00", "12:00", "23:59"])
def test_slices_cover_seven_days_once_newest_first_and_none_is_written_before_its_runs(clock):
    hour, minute = map(int, clock.split(":"))
    now = datetime(2026, 11, 27, hour, minute, tzinfo=UTC)
    plan = slices(now)
    assert plan[0].newest == timedelta(0) and plan[-1].oldest == timedelta(days=7)
    for newer, older in pairwise(plan):
        assert newer.oldest == older.newest  # contiguous, no overlap
    for piece in plan:
        assert piece.newest < piece.oldest
        assert timedelta(0) <= piece.written <= piece.newest  # written after its newest run started
        start, end = now - piece.oldest, now - piece.newest
        assert start.date() == (end - timedelta(microseconds=1)).date()  # within one day-partition


def test_only_the_freshest_parts_were_written_in_the_last_twenty_minutes():
    plan = slices(datetime(2026, 11, 27, 18, 0, tzinfo=UTC))
    recent = [p for p in plan if p.written <= timedelta(minutes=20)]
    assert [(p.newest, p.oldest) for p in recent] == [
        (timedelta(0), timedelta(minutes=20)),
        (timedelta(minutes=20), timedelta(hours=1)),
    ]
