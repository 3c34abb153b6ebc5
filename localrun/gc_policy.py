"""Full garbage collections that do not grow with the job's state (local runs only).

The local job keeps its state in the Python heap (the DirectRunner holds
dedup memory, open sessions and minute folders as Python objects): at 200
events/s the heap grew by about 8,000 objects a second, and Python's full
collections, which walk every object, grew with it: 0.10 s at 190,000
objects, 0.83 s at 1.75 million three and a half minutes later (gc callbacks
in `python -m localrun`, 2026-12-06). Each one stops the job, and they came
on top of the once-a-minute work of closing a minute, so the p99 latency to
BigQuery of those slices grew with the run.

`freeze_survivors()` moves what survived each full collection into Python's
permanent generation (`gc.freeze()`), so the next full collection walks only
what was allocated since. What it costs: a cycle of objects frozen while
alive and dropped later is never collected (plain references are still freed
at once). Objects of the bundle in flight are frozen too, and a cycle among
them (the runner's own bookkeeping has some) then stays: memory can grow
more than the state; not measured yet over hours. A production worker keeps
its state in Streaming Engine, not in its heap, and does not need this.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_installed: dict = {}


def freeze_survivors() -> None:
    """After every full collection, freeze its survivors (from a helper thread:
    the collector's callback only says that one has finished)."""
    with _lock:
        if _installed:
            return
        finished = threading.Event()

        def on_collection(phase: str, info: dict) -> None:
            if phase == "stop" and info["generation"] == 2:
                finished.set()

        def freezer() -> None:
            while True:
                finished.wait()
                finished.clear()
                with _lock:  # never after uninstall() has given the objects back
                    if _installed.get("callback") is not on_collection:
                        return
                    gc.freeze()

        gc.callbacks.append(on_collection)
        thread = threading.Thread(target=freezer, name="gc-freeze-survivors", daemon=True)
        _installed.update(callback=on_collection, finished=finished, thread=thread)
        thread.start()


def uninstall() -> None:
    """Stop freezing and give the frozen objects back to the collector (tests)."""
    with _lock:
        callback = _installed.pop("callback", None)
        finished = _installed.pop("finished", None)
        thread = _installed.pop("thread", None)
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)
        if finished is not None:
            finished.set()  # lets the freezer thread see it is uninstalled
        gc.unfreeze()
    if thread is not None:
        thread.join(30)
