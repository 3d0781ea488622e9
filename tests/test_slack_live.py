"""A live message: throttled updates from worker threads, and the final update always last."""

import itertools
import threading
import time

import pytest

from bot.live import LiveMessage
from bot.render.limits import Message


class RecordingClient:
    def __init__(self, delay=0.0):
        self.updates = []
        self.delay = delay
        self.lock = threading.Lock()

    def chat_update(self, channel, ts, text, blocks, **_):
        time.sleep(self.delay)
        with self.lock:
            self.updates.append((time.monotonic(), text))


def render(steps):
    return Message(f"{len(steps)} steps", [])


def test_updates_are_throttled_however_fast_steps_arrive_from_many_threads():
    client = RecordingClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.2)
    workers = [
        threading.Thread(target=lambda: [(live.step(object()), time.sleep(0.01)) for _ in range(40)])
        for _ in range(4)
    ]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    live.finish(Message("done", []))
    elapsed = time.monotonic() - t0
    assert len(live.steps) == 160
    assert len(client.updates) <= elapsed / 0.2 + 2  # about one per interval, plus the final one
    times = [t for t, _ in client.updates]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(times[:-1]))  # the final one may come sooner
    assert client.updates[-1][1] == "done"


def test_a_slow_intermediate_update_can_never_land_after_the_final_one():
    client = RecordingClient(delay=0.3)
    live = LiveMessage(client, "C1", "1.0", render, interval=0.05)
    live.step(object())
    time.sleep(0.1)  # an intermediate update is now in flight
    live.finish(Message("final", []))
    assert client.updates[-1][1] == "final"


def test_no_update_is_sent_when_nothing_changed():
    client = RecordingClient()
    live = LiveMessage(client, "C1", "1.0", render, interval=0.05)
    time.sleep(0.2)
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
    deadline = time.monotonic() + 5
    while client.calls < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the intermediate update is stuck inside Slack
    t0 = time.monotonic()
    live.finish(Message("final", []))
    assert time.monotonic() - t0 < 5  # the worker is free again long before Slack answers (10 s)
    assert client.updates == []
    client.release.set()
    deadline = time.monotonic() + 5
    while len(client.updates) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [text for _, text in client.updates] == ["1 steps", "final"]


def test_a_failed_final_update_is_raised_to_the_caller():
    class Failing(RecordingClient):
        def chat_update(self, channel, ts, text, blocks, **_):
            raise OSError("connection refused")

    live = LiveMessage(Failing(), "C1", "1.0", render, interval=0.05)
    live.step(object())
    time.sleep(0.12)  # an intermediate update failed: logged, the updater carries on
    with pytest.raises(OSError, match="refused"):
        live.finish(Message("final", []))
