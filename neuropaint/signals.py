"""Stop a command on SIGINT / SIGTERM without deadlocking it.

A Python signal handler runs in the main thread, between two bytecodes of whatever the main
thread was doing. If that was ``threading.Event.wait`` (or anything else holding a lock), a
handler that calls ``Event.set()`` waits for a lock its own thread holds, forever. The live
commands hit exactly this: ``python -m live.simulate`` waited in ``stop.wait(0.2)`` and, on
the SIGTERM its parent's death sends, hung in ``stop.set()`` inside the handler, so a killed
``live.render`` left its simulated headset streaming.

:func:`stop_on_signals` keeps the handler lock-free: it only writes a byte to a pipe. A
watcher thread reads the pipe and calls ``on_stop`` there, where taking a lock is safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = ["stop_on_signals"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(on_stop: Callable[[], None],
                    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, ``signals`` call ``on_stop()`` on a watcher thread.

    ``on_stop`` may set events and stop engines, but should return quickly; it runs at least
    once after each signal (signals that arrive together may share one call).
    The previous handlers come back when the block ends. Only the main thread may enter
    (Python installs signal handlers there only).
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def on_signal(signum: int, frame: object) -> None:
        # No lock, no allocation worth the name: a full pipe already holds a pending stop.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(write_fd, b"s")

    def watch() -> None:
        while os.read(read_fd, 64):  # b"" once the write end is closed: the block is over
            try:
                on_stop()
            except Exception:  # keep watching: the next Ctrl-C must still reach on_stop
                logger.exception("stopping on a signal failed")

    watcher = threading.Thread(target=watch, name="stop-on-signal", daemon=True)
    watcher.start()
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)
        watcher.join(timeout=5.0)
        if not watcher.is_alive():  # else it still reads; the descriptor goes with the process
            os.close(read_fd)
