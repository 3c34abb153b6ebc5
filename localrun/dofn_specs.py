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

`cache_dofn_specs()` looks at the methods of each DoFn class once: the
answer depends only on the parameter defaults of the DoFn's methods
(`StateParam`, `TimerParam`), which live on the class. Not remembered, asked
every time as before: a method with an `_inspect_<name>` hook (beam.Map's
wrapper takes process()'s parameters from its function); a DoFn whose class
looks attributes up its own way (the wrappers of `--runtime_type_check`
forward them to the DoFn they wrap) or whose instance holds a method; errors
(a DoFn whose methods repeat a parameter raises every time). Dataflow's SDK
harness builds a DoFn's signature once per bundle processor and is not
affected. Remove this when tests/test_dofn_specs.py finds
Beam asking once per class by itself.
"""

from __future__ import annotations

import threading
import types
import weakref

_lock = threading.Lock()
_original: dict = {}


def _plain(dofn) -> bool:
    """Whether a DoFn's methods are its class's: no custom attribute lookup
    (Beam's type-check wrappers forward attributes to the DoFn they wrap) and
    no instance attribute that is a method or hides a method of the class."""
    cls = type(dofn)
    if cls.__getattribute__ is not object.__getattribute__ or hasattr(cls, "__getattr__"):
        return False
    return not any(isinstance(value, types.MethodType) or callable(getattr(cls, name, None))
                   for name, value in getattr(dofn, "__dict__", {}).items())


def _specs(dofn, names) -> tuple[set, set]:
    """Beam's own loop (userstate.get_dofn_specs) over the given methods."""
    from apache_beam.transforms.core import _DoFnParam, _StateDoFnParam, _TimerDoFnParam, get_function_arguments

    state_specs, timer_specs = set(), set()
    for name in names:
        defaults = get_function_arguments(dofn, name)[1]
        param_ids = [d.param_id for d in defaults if isinstance(d, _DoFnParam)]
        if len(param_ids) != len(set(param_ids)):
            raise ValueError("DoFn %r has duplicate %s method parameters: %s." % (dofn, name, param_ids))
        for d in defaults:
            if isinstance(d, _StateDoFnParam):
                state_specs.add(d.state_spec)
            elif isinstance(d, _TimerDoFnParam):
                timer_specs.add(d.timer_spec)
    return state_specs, timer_specs


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
            if not _plain(dofn):
                return original(dofn)
            cls = type(dofn)
            plan = by_class.get(cls)
            if plan is None:
                methods = [n for n in dir(dofn) if isinstance(getattr(dofn, n, None), types.MethodType)]
                # A method with an `_inspect_<name>` hook takes its parameters from
                # elsewhere (beam.Map's CallableWrapperDoFn: from the function it
                # wraps): asked every time, the others once per class.
                hooked = tuple(n for n in methods if hasattr(dofn, f"_inspect_{n}"))
                state_specs, timer_specs = _specs(dofn, [n for n in methods if n not in hooked])
                plan = by_class[cls] = (hooked, frozenset(state_specs), frozenset(timer_specs))
            hooked, state_specs, timer_specs = plan
            more_state, more_timers = _specs(dofn, hooked)
            # Fresh sets, as Beam's own function returns: a caller may add to them.
            return set(state_specs) | more_state, set(timer_specs) | more_timers

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
