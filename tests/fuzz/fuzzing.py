"""Shared pieces of the fuzz suite: junk values, a per-call deadline, and the contract
"a clear error naming the argument, or a result"."""
from __future__ import annotations

import contextlib
import math
import os
import signal

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# examples per entry point: small by default; FASTSEQ_FUZZ_EXAMPLES or the slow run raise it
SMALL = int(os.environ.get("FASTSEQ_FUZZ_EXAMPLES", "12"))
BIG = 200
DEADLINE_S = 20.0  # a call slower than this counts as a hang

# what a caller may be told: the argument is wrong (ValueError, including scikit-learn's
# NotFittedError), of the wrong kind (TypeError), or a file is missing or unreadable (OSError)
CLEAR_ERRORS = (ValueError, TypeError, OSError)


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


@contextlib.contextmanager
def deadline(seconds: float = DEADLINE_S):
    """Fail the call with Hang if it runs longer than ``seconds`` (SIGALRM, main thread)."""
    def on_alarm(signum, frame):
        raise Hang(f"no result or error within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clear_error_or_result(call, names: tuple[str, ...], errors: tuple = CLEAR_ERRORS, value=None,
                          seconds: float = DEADLINE_S):
    """Run ``call()`` under the deadline: return its result, or the clear error it raised.

    A clear error is one of ``errors`` whose message names one of ``names`` (the argument
    that was malformed, or what it feeds), or for a text ``value`` (a file name) the value
    itself. Anything else fails the test.
    """
    if isinstance(value, str) and value:
        names = (*names, value)
    try:
        with deadline(seconds):
            return call()
    except errors as exc:
        message = str(exc)
        assert any(n in message for n in names), f"{type(exc).__name__} does not name {names}: {message!r}"
        return exc


def fuzz_settings(examples: int) -> settings:
    # the default run is the same every time (a suite that passes today passes tomorrow);
    # FASTSEQ_FUZZ_EXAMPLES or the big run explore new examples on each run
    fixed = examples <= SMALL and "FASTSEQ_FUZZ_EXAMPLES" not in os.environ
    return settings(max_examples=examples, deadline=None, derandomize=fixed, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])



_DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex128, np.dtype("<U2")])


def junk_arrays(max_dims: int = 4) -> st.SearchStrategy:
    """Arrays of any dtype (NaN, infinities, strings, complex) and shape (empty sides, 0-D)."""
    return _DTYPES.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=5),
        elements=_elements(dt)))


def _elements(dt):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if dt.itemsize == 4 else 64)
    if dt.kind == "c":
        return st.complex_numbers(max_magnitude=1e6)
    if dt.kind == "U":
        return st.text(alphabet="ab1 -", max_size=2)
    return None


SCALARS = st.sampled_from([None, True, False, -1, 0, 1, 2, 7, 2**31, 2**63, -2**63, 10**18, 1.5, -0.5,
                           math.nan, math.inf, -math.inf, "", "abc", b"x", 1j, (), (1,), [], [[1], [2, 3]],
                           {}, "rnn", "tile", "greedy", np.int64(3), np.float32(0.25)])

JUNK = st.one_of(SCALARS, junk_arrays(), st.lists(st.integers(-3, 10), max_size=6))


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def big_int(value) -> bool:
    """Sizes past 2**30: what makes a careless allocation blow up (or a C long overflow)."""
    return is_int(value) and abs(int(value)) >= 2**30
