"""Ctrl-C (SIGINT) and kill (SIGTERM) that are never lost.

Python turns a signal into KeyboardInterrupt at the next bytecode of the main thread. When that
bytecode belongs to a callback run from C (JAX's garbage-collection callback, a finaliser), the
exception is only printed as "Exception ignored in ..." and the run goes on to its end. While
`handled()` is active, such a swallowed interrupt is delivered again as soon as the callback has
returned, and long loops may call `check()` between their steps as well."""

import _thread
import contextlib
import signal
import sys
import threading

_requested = threading.Event()


def _handler(signum, frame):
    _requested.set()
    raise KeyboardInterrupt


REDELIVERY_DELAY_S = 0.05  # long enough for the callback that swallowed it to have returned


_active_lock = threading.Lock()
_active = False  # True inside handled(): a re-delivery after it would land in the interrupt's own clean-up


def _interrupt_main_if_active():
    with _active_lock:
        if _active:
            _thread.interrupt_main(signal.SIGINT)


def _deliver_again(hook):
    def unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt):  # swallowed inside a callback: raise it again from
            timer = threading.Timer(REDELIVERY_DELAY_S, _interrupt_main_if_active)  # outside
            timer.daemon = True
            timer.start()
        else:
            hook(info)

    return unraisable


def _note_only(signum, frame):
    _requested.set()


def check():
    """Raise KeyboardInterrupt if an interrupt was requested (call between the steps of a long loop)."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def handled():
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, and one raised inside a
    callback from C is not lost. Outside the main thread signals cannot be handled: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _active
    _requested.clear()
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, _deliver_again(sys.unraisablehook)
    _active = True
    try:
        yield
    finally:
        with _active_lock:
            _active = False
        signal.signal(signal.SIGINT, _note_only)  # a re-delivery already under way lands here, not in the clean-up
        sys.unraisablehook = hook
        for s, h in previous.items():
            signal.signal(s, h)
