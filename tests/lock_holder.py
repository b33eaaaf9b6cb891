"""A second process holding a folder's lock (comipn_prep.folder_lock) until it is stopped: the lock the
OS arbitrates between processes, as two real commands would meet it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import comipn_prep

# The holder process runs the code under test (the tree comipn_prep was imported from).
CODE = Path(comipn_prep.__file__).resolve().parents[1]

_HOLDER = """
import sys, time
from comipn_prep.folder_lock import hold_folder
with hold_folder(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


class Holder:
    """A second process holding ``folder``'s lock ``name`` until it is stopped."""

    def __init__(self, folder: Path, name: str = ".comipn.lock"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CODE), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), name], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != "held":
            self.proc.kill()
            raise AssertionError(f"the holder did not take the lock: {line!r} {self.proc.stderr.read()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
