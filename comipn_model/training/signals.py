"""Ctrl-C and ``kill`` during training: note the signal, let the loop save ``last.pt`` at the current
step, and stop; a second signal stops at once (the usual KeyboardInterrupt / default action)."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report


class StopRequests:
    """While active (a context manager), SIGINT and SIGTERM set :attr:`signum` instead of killing the
    process. Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            # Second signal: the user insists; give the signal its usual effect now.
            self._restore()
            signal.raise_signal(signum)
            return
        self.signum = signum
        log.warning("%s received: saving last.pt at the current step (send it again to stop at once)",
                    signal.Signals(signum).name)

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()


def exit_code(signum: int) -> int:
    return EXIT_CODES.get(signum, 128 + int(signum))
