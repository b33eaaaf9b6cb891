"""One writer per output folder: a lock held for the whole command.

Two processes filling one folder (a job started twice, a job array with a repeated ``--shard``, two
trainings with one ``--run-dir``) would both exit 0 with their output mixed. Every command that fills a
folder holds ``<folder>/.comipn.lock`` (grounding shard I/N of N > 1: ``.comipn.shard-I-of-N.lock``, so a
job array's shards still run side by side) while it runs; a second one exits at once, naming the folder
and the holder.

The lock is :mod:`filelock`'s ``fcntl.flock`` lock on Unix: the OS frees it when its holder dies, even by
SIGKILL, so a stale lock file of a dead process is simply taken over. The holder's pid, host and command
go to a sidecar ``<lock>.holder`` (JSON) after the lock is taken, for the message of the one refused.
Lock files are dot-files beside the output, never in ``crops/``, and go when the lock is released. On a network file system without
``flock`` (some NFS setups) filelock falls back to its own marker files.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from .conll import atomic_write_bytes

logger = logging.getLogger(__name__)

LOCK_NAME = ".comipn.lock"
HOLDER_SUFFIX = ".holder"
# Locks this process holds (resolved path -> depth): a command that holds a folder may call a library
# function that takes the same lock again (``run`` -> ``build_dicts``); one process is one writer.
_HELD: dict[Path, int] = {}


class FolderBusyError(FileExistsError):
    """Another process holds the folder's lock; ``str(err)`` names the folder and the holder."""


def lock_name(shard_index: int = 0, shard_count: int = 1) -> str:
    """The lock file's name: one per folder, or one per grounding shard."""
    return LOCK_NAME if shard_count == 1 else f".comipn.shard-{shard_index}-of-{shard_count}.lock"


def holder_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + HOLDER_SUFFIX)


def read_holder(lock_path: Path) -> str:
    """"pid P on host H (command, since ...)" from the sidecar, or a plain "another process"."""
    try:
        info = json.loads(holder_path(lock_path).read_text(encoding="utf-8"))
        text = f"pid {info['pid']} on host {info['host']}"
        if info.get("command"):
            text += f" ({info['command']}, since {info.get('since', '?')})"
        return text
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid and host are not written yet)"


def _write_holder(lock_path: Path) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "",
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    atomic_write_bytes(holder_path(lock_path), (json.dumps(info) + "\n").encode("utf-8"), durable=False)


class _Replaced(Exception):
    """The file just locked is no longer the lock file (its holder removed it on release meanwhile)."""


def _still_the_lock_file(lock_path: Path):
    def check(fd: int) -> None:
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            raise _Replaced from None
        if not os.path.samestat(os.fstat(fd), current):
            raise _Replaced

    return check


def _acquire(lock_path: Path, folder: Path, what: str) -> FileLock:
    # A holder removes the lock file on release (no litter in the folder); whoever locked the removed
    # file in that instant sees it is gone and locks the file now at the path instead.
    for _ in range(10):
        lock = FileLock(str(lock_path), timeout=0, on_acquired=_still_the_lock_file(lock_path))
        try:
            lock.acquire()
            return lock
        except _Replaced:
            continue
        except Timeout:
            break
    raise FolderBusyError(f"{folder}: this {what} is in use by {read_holder(lock_path)}; wait for it to end "
                          f"or write elsewhere (lock file {lock_path})")


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike, name: str = LOCK_NAME, what: str = "output folder") -> Iterator[Path]:
    """Hold ``folder``'s lock until the block ends; :class:`FolderBusyError` at once when another process
    holds it. A folder that is not there is made for the lock, and removed again when the block leaves
    it empty (a refused run writes nothing). The lock file goes on release."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    key = (folder / name).resolve()
    if key in _HELD:  # held by this process already
        _HELD[key] += 1
        try:
            yield folder / name
        finally:
            _HELD[key] -= 1
        return
    created = []  # the folders made here, innermost first
    probe = folder
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / name
    try:
        lock = _acquire(lock_path, folder, what)
    except BaseException:
        _remove_empty(created)
        raise
    _HELD[key] = 1
    try:
        _write_holder(lock_path)
        logger.debug("holding %s", lock_path)
        yield lock_path
    finally:
        del _HELD[key]
        holder_path(lock_path).unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)  # while still held: see _acquire
        lock.release()
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            break  # not empty: something was written there


@contextlib.contextmanager
def hold_folders(*locks: tuple[str | os.PathLike, str, str]) -> Iterator[None]:
    """Hold several folders' locks (``(folder, lock name, what)`` each), taken in the order given."""
    with contextlib.ExitStack() as stack:
        for folder, name, what in locks:
            stack.enter_context(hold_folder(folder, name, what))
        yield


Lock = tuple  # (folder, lock name, what it is)


def holding(locks: Callable[[dict], list[Lock]]):
    """Decorate a function that fills folders: ``locks(arguments)`` lists the locks to hold while it runs
    (``arguments``: the call's arguments by name, defaults applied)."""
    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with hold_folders(*locks(bound.arguments)):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
