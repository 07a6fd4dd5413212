"""Replacing a folder on disk so that a crash never loses it: the one way vlp saves a folder
(checkpoints, training state, search indexes).

A process killed at any instant of a save leaves the old or the new version loadable:

    1. everything is written into `.NAME.tmp-XXXX` beside the target;
    2. that folder is renamed `.NAME.ready-XXXX`: the new version is complete;
    3. the target, if any, is renamed `.NAME.old-XXXX`;
    4. the ready folder is renamed to the target, and the old one removed.

Between 3 and 4 the target is missing; `recover(path)`, which every reader calls first, renames
the newest complete version (ready, else old) back into place. Leftovers are removed at the
next save. One writer per folder at a time.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _versions(path: Path, stage: str) -> list[Path]:
    """The `.NAME.{stage}-*` folders beside `path`, newest first."""
    found = [p for p in path.parent.glob(f".{path.name}.{stage}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def recover(path) -> None:
    """When a save was cut off between its two renames, put the newest complete version back.

    Does nothing when `path` exists; never deletes anything (a writer may be at work).
    """
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return
    for stage in ("ready", "old"):
        for candidate in _versions(path, stage):
            try:
                os.replace(candidate, path)
                return
            except OSError:  # another reader recovered it first
                if path.exists():
                    return


def _clean(path: Path) -> None:
    """Remove what earlier, interrupted saves left beside `path` (only once `path` is whole)."""
    for stage in ("tmp", "ready", "old"):
        for leftover in _versions(path, stage):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_folder(path):
    """Yield an empty temporary folder beside `path`; when the block succeeds it becomes `path`.

    If the block raises, the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    _clean(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ready = tmp.with_name(tmp.name.replace(".tmp-", ".ready-", 1))
    os.replace(tmp, ready)
    if path.exists():
        os.replace(path, ready.with_name(ready.name.replace(".ready-", ".old-", 1)))
    os.replace(ready, path)
    _clean(path)
