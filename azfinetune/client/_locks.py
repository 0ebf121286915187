"""One submit of a job name at a time on this machine: threads of one process and separate processes alike.

Azure ML answers a second PUT of an existing job with the job (200), not a conflict, so two submits of the same
spec that both look the name up before either creates it would both create, and both be told `created=True`.
`submit_lock` serialises the look-up → create of one name in one workspace: the second submit then finds the
first one's job and returns it with `created=False`. It is an advisory file lock (fcntl.flock) under the user's
cache folder, keyed by workspace and job name, so it also holds between two `azfinetune submit` processes (a CI
retry beside a person's run); the thread lock beside it makes it hold between threads on every platform. Submits
from different machines are settled by the service's answer and the spec-hash check as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["lock_dir", "submit_lock"]

logger = logging.getLogger("azfinetune.client")

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def lock_dir() -> Path:
    """$AZFINETUNE_LOCK_DIR, else <XDG cache or ~/.cache>/azfinetune/locks."""
    given = os.environ.get("AZFINETUNE_LOCK_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "azfinetune" / "locks"


def _key(scope: str, name: str) -> str:
    return hashlib.sha256(f"{scope}\0{name}".encode()).hexdigest()[:32]


@contextlib.contextmanager
def submit_lock(scope: str, name: str, *, wait_note_s: float = 2.0) -> Iterator[None]:
    """Hold the lock of job `name` in `scope` (the workspace's id) while the block runs."""
    key = _key(scope, name)
    with _GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if not thread_lock.acquire(timeout=wait_note_s):
        logger.info("waiting for another submit of %s in this process", name)
        thread_lock.acquire()
    try:
        with _file_lock(key, name, wait_note_s=wait_note_s):
            yield
    finally:
        thread_lock.release()


@contextlib.contextmanager
def _file_lock(key: str, name: str, *, wait_note_s: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: the thread lock only
        yield
        return
    try:
        folder = lock_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / f"{key}.lock").open("a+")
    except OSError as error:  # a read-only home: submit still works, settled by the service as before
        logger.debug("no submit lock for %s (%s)", name, error)
        yield
        return
    with handle:
        started, noted = time.monotonic(), False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not noted and time.monotonic() - started > wait_note_s:
                    logger.info("waiting for another submit of %s on this machine", name)
                    noted = True
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
