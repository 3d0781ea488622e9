"""A live message: throttled updates from worker threads, and the final update always last."""

import itertools
import threading
import time

from bot.listeners.live import LiveMessage
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
