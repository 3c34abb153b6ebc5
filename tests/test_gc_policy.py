"""The local runner freezes what survives each full collection
(localrun/gc_policy.py): the next full collection walks only what came
since, and the policy can be taken back."""

from __future__ import annotations

import gc
import time

import pytest

from localrun import gc_policy


@pytest.fixture
def policy():
    gc_policy.uninstall()
    gc_policy.freeze_survivors()
    yield
    gc_policy.uninstall()


def _until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def test_the_survivors_of_a_full_collection_are_frozen_and_not_walked_again(policy):
    kept = [[i] for i in range(50_000)]  # long-lived state, as the job's
    gc.collect()
    _until(lambda: gc.get_freeze_count() >= len(kept))
    gc.collect()
    # A full collection now walks what was allocated since the freeze, not the 50,000 lists.
    assert gc.get_count()[2] == 0 and sum(len(gc.get_objects(g)) for g in range(3)) < len(kept)
    assert kept[-1] == [49_999]  # frozen objects stay alive and usable


def test_uninstall_gives_the_objects_back():
    gc_policy.uninstall()
    gc_policy.freeze_survivors()
    gc.collect()
    _until(lambda: gc.get_freeze_count() > 0)
    gc_policy.uninstall()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gc.get_freeze_count() == 0  # nothing freezes any more: the callback is gone
    assert all(getattr(cb, "__name__", "") != "on_collection" for cb in gc.callbacks)
