"""A live message: throttled updates from worker threads, and the final update always last."""

import itertools
import threading
import time

import pytest
from waiting import wait_until

from bot.live import LiveMessage
from bot.render.limits import Message


class RecordingClient:
    def __init__(self):
        self.updates = []
        self.lock = threading.Lock()

    def chat_update(self, channel, ts, text, blocks, **_):
        with self.lock:
            self.updates.append((time.monotonic(), text))


def render(steps):
    return Message(f"{len(steps)} steps", [])


def test_updates_are_throttled_however_fast_steps_arrive_from_many_threads():
    client = RecordingClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.2)
    enough = threading.Event()

    def work():
        while not enough.is_set():
            live.step(object())

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        # Steps keep arriving as fast as four threads can send them until several updates went out.
        wait_until(lambda: len(client.updates) >= 4, what="four intermediate updates")
    finally:
        enough.set()
        for w in workers:
            w.join()
    live.finish(Message("done", []))
    intermediate = client.updates[:-1]
    assert len(live.steps) > 10 * len(intermediate)  # many steps per update, never one each
    times = [t for t, _ in intermediate]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(times))  # at most one per interval
    counts = [int(text.split()[0]) for _, text in intermediate]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)  # each one newer than the last
    assert client.updates[-1][1] == "done"


class CountingEvent(threading.Event):
    def __init__(self):
        super().__init__()
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def test_no_update_is_sent_when_nothing_changed():
    client = RecordingClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.02)
    ticks = CountingEvent()
    live._done = ticks  # the updater looks at it once per interval
    wait_until(lambda: ticks.waits >= 5, what="five update intervals")
    live.finish(None)
    assert client.updates == []


class StuckClient(RecordingClient):
    """The first update hangs (a slow Slack, a Retry-After sleep) until released."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def chat_update(self, channel, ts, text, blocks, **_):
        self.calls += 1
        if self.calls == 1:
            self.release.wait(10)
        super().chat_update(channel, ts, text, blocks)


def test_finish_gives_up_waiting_on_a_stuck_update_yet_the_final_one_still_lands_last(monkeypatch):
    monkeypatch.setattr("bot.live.FINISH_GRACE_S", 0.2)
    client = StuckClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.05)
    live.step(object())
    wait_until(lambda: client.calls >= 1, what="the intermediate update stuck inside Slack")
    t0 = time.monotonic()
    live.finish(Message("final", []))
    assert time.monotonic() - t0 < 5  # the worker is free again long before Slack answers (10 s)
    assert client.updates == []
    client.release.set()
    wait_until(lambda: len(client.updates) >= 2, what="both updates")
    assert [text for _, text in client.updates] == ["1 steps", "final"]


def test_a_slow_intermediate_update_can_never_land_after_the_final_one():
    client = StuckClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.05)
    live.step(object())
    wait_until(lambda: client.calls >= 1, what="an intermediate update in flight")
    finishing = threading.Thread(target=live.finish, args=(Message("final", []),))
    finishing.start()
    wait_until(live._done.is_set, what="finish called while the update is in flight")
    client.release.set()  # Slack answers the intermediate update only now
    finishing.join(10)
    assert not finishing.is_alive()
    assert [text for _, text in client.updates] == ["1 steps", "final"]


def test_a_failed_final_update_is_raised_to_the_caller():
    class Failing(RecordingClient):
        calls = 0

        def chat_update(self, channel, ts, text, blocks, **_):
            self.calls += 1
            raise OSError("connection refused")

    client = Failing()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.02)
    live.step(object())
    # An intermediate update failed: logged, the updater carries on to a later interval.
    ticks = CountingEvent()
    live._done = ticks
    wait_until(lambda: client.calls >= 1 and ticks.waits >= 2, what="a failed intermediate update")
    with pytest.raises(OSError, match="refused"):
        live.finish(Message("final", []))
    assert client.calls == 2
