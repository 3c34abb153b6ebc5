"""The DirectRunner's introspection of DoFns, remembered per DoFn class (local runs only).

Beam 2.77's BundleBasedDirectRunner re-creates each ParDo's DoFn for every
bundle and asks `userstate.get_dofn_specs` about it several times on the way
(`should_execute_serially` when it schedules the bundle, the evaluator's
`start_bundle`, `DoFnSignature`, `validate_stateful_dofn`). Each call runs
`inspect.signature` over every method of the DoFn (`dir(dofn)`: about 40).
The local runner makes a bundle per key of a stateful step, so this runs
hundreds of times a second: a py-spy profile of `python -m localrun` at 300
events/s found 61% of the job's samples in that introspection (2026-12-06,
docs/performance.md section 2).

`cache_dofn_specs()` remembers the answer per DoFn class. The answer depends
only on the parameter defaults of the DoFn's methods (`StateParam`,
`TimerParam`), which live on the class; a DoFn with a bound method among its
instance attributes (which `dir()` would also see) is asked afresh every time.
Errors are not remembered: a DoFn whose methods repeat a parameter raises as
before. Dataflow's SDK harness builds a DoFn's signature once per bundle
processor and is not affected. Remove this when tests/test_dofn_specs.py finds
Beam asking once per class by itself.
"""

from __future__ import annotations

import threading
import types
import weakref

_lock = threading.Lock()
_original: dict = {}


def _has_instance_methods(dofn) -> bool:
    return any(isinstance(value, types.MethodType) for value in getattr(dofn, "__dict__", {}).values())


def cache_dofn_specs() -> None:
    """Make every later `get_dofn_specs` of a DoFn class answer from memory."""
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    with _lock:
        if "get_dofn_specs" in _original:
            return
        original = _original["get_dofn_specs"] = userstate.get_dofn_specs
        # Weak keys: a DoFn class defined inside a function (a new class per
        # call) does not stay alive because of this cache.
        by_class: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

        def get_dofn_specs(dofn):
            if _has_instance_methods(dofn):
                return original(dofn)
            cls = type(dofn)
            specs = by_class.get(cls)
            if specs is None:
                state_specs, timer_specs = original(dofn)
                specs = by_class[cls] = (frozenset(state_specs), frozenset(timer_specs))
            # Fresh sets, as Beam's own function returns: a caller may add to them.
            return set(specs[0]), set(specs[1])

        # userstate's is_stateful_dofn and validate_stateful_dofn, core.ParDo and
        # runners.common look it up in userstate; the DirectRunner's evaluators
        # imported the name itself.
        userstate.get_dofn_specs = get_dofn_specs
        transform_evaluator.get_dofn_specs = get_dofn_specs


def uncache_dofn_specs() -> None:
    """Put Beam's own function back (tests)."""
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    with _lock:
        original = _original.pop("get_dofn_specs", None)
        if original is not None:
            userstate.get_dofn_specs = original
            transform_evaluator.get_dofn_specs = original
