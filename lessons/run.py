"""Run lessons as notebooks: `python lessons/run.py [NUMBER ...] [--quick]`.

Each lesson's source is a jupytext percent-format script, `lessons/NN_name.py`. This turns it into
a notebook, executes it in a fresh Jupyter kernel from the lesson's folder, and writes the executed
notebook beside the source (`lessons/NN_name.ipynb`, not committed) for Jupyter to open. `--quick`
sets VLP_LESSON_QUICK=1, the short run CI executes (tests/test_lessons.py calls `execute`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
QUICK = "VLP_LESSON_QUICK"  # "1": the lesson's quick run (CI); unset or "0": the full run a class does


def lessons() -> list[Path]:
    """Every lesson source, in order: lessons/NN_*.py."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def execute(source: Path, quick: bool, cell_timeout: int | None = None) -> nbformat.NotebookNode:
    """The lesson as a notebook, executed top to bottom; a failing cell raises
    nbclient.exceptions.CellExecutionError naming the cell and its traceback. `cell_timeout`:
    seconds a cell may take (None: no limit, for full runs on a busy machine)."""
    nb = jupytext.read(source)
    previous = os.environ.get(QUICK)
    os.environ[QUICK] = "1" if quick else "0"  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(source.parent)}}).execute()
    finally:
        if previous is None:
            del os.environ[QUICK]
        else:
            os.environ[QUICK] = previous
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", type=int, help="lesson numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="the short run CI uses")
    args = parser.parse_args(argv)
    chosen = [p for p in lessons() if not args.numbers or int(p.name[:2]) in args.numbers]
    if not chosen:
        parser.error(f"no lesson numbered {args.numbers}; there are {[p.name for p in lessons()]}")
    for source in chosen:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        nb = execute(source, args.quick)
        seconds = time.perf_counter() - t0
        nbformat.write(nb, source.with_suffix(".ipynb"))
        print(f"{source.name}: {'quick' if args.quick else 'full'} run {seconds:.0f} s "
              f"(load average {load:.1f} → {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores); "
              f"wrote {source.with_suffix('.ipynb').name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
