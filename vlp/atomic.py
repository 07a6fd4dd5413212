"""Replacing a folder on disk so that a crash never loses it: the one way vlp saves a folder
(checkpoints, training state, search indexes).

A process killed at any instant of a save leaves the old or the new version loadable:

    1. everything is written into `.NAME.tmp-XXXX` beside the target and flushed to disk; the
       writer holds a lock on that folder (flock: the kernel drops it when the writer dies);
    2. that folder is renamed `.NAME.ready-XXXX`: the new version is complete;
    3. the target, if any, is renamed `.NAME.old-XXXX`;
    4. the ready folder is renamed to the target (should a reader have put an older version
       there meanwhile, it is set aside first); the lock is let go, the old folder removed.

Between 3 and 4 the target is missing. `recover(path)`, which every reader and writer calls
first, then renames the newest complete version (ready, else old) back into place, waiting
for a live writer to do it itself. It also removes what no live process holds: a folder is
first renamed `.NAME.trash-…`, which is never put back, so a removal cut off half-way is
never taken for a version; a `.tmp-` folder is never put back (nothing says it is complete).

One writer per folder at a time. Readers may run during a save and never break it, but for an
instant the folder is missing, and a reader between two of its files can see both versions
(the index's checksums refuse that with one sentence; read again). The locks need POSIX
(flock); elsewhere (Windows) saves are still atomic for one process at a time, without them.
"""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

STAGES = ("tmp", "ready", "old", "trash")
NO_LOCKS = -1  # what `_lock` returns where there are no locks to take


def _versions(path: Path, stage: str) -> list[Path]:
    """The `.NAME.{stage}-*` folders beside `path`, newest first."""
    found = []
    for p in path.parent.glob(f".{path.name}.{stage}-*"):
        try:
            found.append((p.stat().st_mtime_ns, p))
        except OSError:  # renamed or removed by another process meanwhile
            pass
    return [p for _, p in sorted(found, reverse=True) if p.is_dir()]


def _lock(folder: Path, wait: bool = False) -> int | None:
    """Hold an exclusive lock on `folder`: its descriptor (close it to let go), or None when a
    live process holds it or no folder has that name any more. Whoever holds a folder's lock
    is the only one who may rename or remove it."""
    if fcntl is None:
        return NO_LOCKS if folder.is_dir() else None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except (FileNotFoundError, PermissionError):  # gone, or another user's
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(folder)):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _unlock(fd: int) -> None:
    if fd != NO_LOCKS:
        os.close(fd)


def recover(path) -> None:
    """Put the newest complete version back when a save was cut off between its renames, and
    remove the leftovers of saves whose writer is gone."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    while not path.exists():
        newest = _newest(path)
        if newest is None:
            break
        fd = _lock(newest, wait=True)  # a live writer between its renames finishes first
        if fd is None:
            if newest.exists():  # another user's: not ours to move
                break
            continue  # renamed or removed meanwhile: look again
        try:
            # still missing, and no newer version appeared meanwhile (a live writer's, whose
            # lock the next look waits on): an older one must never take its place
            if not path.exists() and _newest(path) == newest:
                os.replace(newest, path)
        except OSError:
            if not path.exists():
                raise
            # else a writer's rename put its new version there after the check: keep that one
        finally:
            _unlock(fd)
    _clean(path)


def _newest(path: Path) -> Path | None:
    """The version to put back: the newest ready one (complete, not yet in place), else the
    newest old one."""
    return next(iter(_versions(path, "ready") + _versions(path, "old")), None)


def _clean(path: Path) -> None:
    for stage in STAGES:
        for leftover in _versions(path, stage):
            fd = _lock(leftover)
            if fd is None:
                continue  # a live writer's
            try:
                if stage != "trash":
                    trash = leftover.with_name(f".{path.name}.trash-{leftover.name[len(path.name) + 2:]}")
                    os.replace(leftover, trash)
                    leftover = trash
                shutil.rmtree(leftover, ignore_errors=True)
            except OSError:  # a read-only folder: leave it
                pass
            finally:
                _unlock(fd)


def _fsync(name) -> None:
    if os.name == "nt":  # a folder cannot be opened there; NTFS orders its metadata itself
        return
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(tmp: Path, path: Path) -> None:
    """Steps 2 to 4: `tmp`, complete, becomes `path`."""
    for root, _, files in os.walk(tmp):  # on disk before the renames: after a power cut, a
        for name in [*files, "."]:  # rename can be there while the data it names is not
            _fsync(os.path.join(root, name))
    suffix = tmp.name[len(f".{path.name}.tmp-"):]
    ready = path.with_name(f".{path.name}.ready-{suffix}")
    os.replace(tmp, ready)
    held = _lock(path, wait=True)  # the old version too, so that no reader puts it back meanwhile
    try:
        if held is not None:
            os.replace(path, path.with_name(f".{path.name}.old-{suffix}"))
        _replace_into(ready, path)
    finally:
        if held is not None:
            _unlock(held)
    _fsync(path.parent)  # the renames themselves


def _replace_into(ready: Path, path: Path) -> None:
    """Step 4. Should a reader have put an older version back at `path` in the instant it was
    missing, that one is set aside as old, and stays locked until `ready` is in place, so that
    no reader puts it back again."""
    set_aside = []
    try:
        for tries_left in reversed(range(100)):  # each older version gets in once at most: bounded all the same
            try:
                os.replace(ready, path)
                return
            except OSError:
                if not path.exists() or not tries_left:
                    raise
            held = _lock(path, wait=True)
            if held is not None:
                set_aside.append(held)
                os.replace(path, path.with_name(f".{path.name}.old-{secrets.token_hex(6)}"))
    finally:
        for fd in set_aside:
            _unlock(fd)


@contextmanager
def atomic_folder(path):
    """Yield an empty temporary folder beside `path`; when the block succeeds it becomes `path`.

    If the block raises, the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    lock = None
    while lock is None:  # a reader's clean-up may remove a new folder before its lock is taken
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
        tmp.mkdir()  # not mkdtemp: the saved folder gets the usual permissions, not 0700
        lock = _lock(tmp)
    try:
        yield tmp
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing there once the swap has begun
        raise
    finally:
        _unlock(lock)
    _clean(path)
