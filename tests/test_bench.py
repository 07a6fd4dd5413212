"""The benchmarks: paths timed in turns, the load printed beside the figures, each command runs."""
import argparse
import importlib
import re

import pytest

from benchmarks.timing import interleaved_seconds, load_average


def test_paths_are_timed_in_turns():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved_seconds(runs, repeats=3, warmup=1)
    assert calls == ["a", "b", "c"] + ["a", "b", "c"] * 3  # warm-up, then A, B, C, A, B, C, …
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_load_average_reads_the_machine():
    assert re.fullmatch(r"load average \d+\.\d\d / \d+\.\d\d / \d+\.\d\d on \d+ cores", load_average())


def bench(name, argv, capsys) -> str:
    module = importlib.import_module(f"benchmarks.{name}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert module.main(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name, argv", [
    ("attention", ["--device", "cpu", "--repeats", "2"]),
    ("generate", ["--device", "cpu", "--repeats", "2", "--tokens", "4"]),
    ("search", ["--n", "2000", "--queries", "20", "--rounds", "1", "--indexes", "flat,hnsw"]),
    ("train", ["--device", "cpu", "--rounds", "1", "--steps", "1", "--batch-size", "8"]),
])
def test_every_timing_benchmark_prints_the_load_beside_its_figures(name, argv, capsys):
    out = bench(name, argv, capsys)
    assert "load average" in out and "|" in out


def test_bench_train_shows_each_lever_against_todays_step(capsys):
    out = bench("train", ["--device", "cpu", "--rounds", "1", "--steps", "1", "--batch-size", "8"], capsys)
    for what in ("today: float32", "+ bf16 autocast", "+ 1 ITM negative", "data: draw"):
        assert re.search(re.escape(what) + r".*\| \d+ +\| \d+\.\d\d", out), what


def test_bench_pretrain_quick_prints_time_to_each_bar_for_both_recipes(capsys):
    out = bench("pretrain", ["--quick", "--device", "cpu"], capsys)
    assert "accuracy on the test split by minutes of training" in out
    table = out.split("time to each bar")[1]
    header = table.splitlines()[1]
    assert "cpu recipe" in header and "today" in header
    for bar in ("VQA ≥ 97 %", "captions ≥ 95 %", "text→image P@1 ≥ 95 %", "ITM ≥ 95 %", "all four"):
        assert bar in table
    speeds = re.search(r"samples/s \(in this run\) +\| (\d+) +\| (\d+)", table)
    assert speeds and int(speeds[1]) > 0 and int(speeds[2]) > 0
    assert re.search(r"\| cpu recipe \| \d+\.\d +\| \d+", out) and re.search(r"\| today +\| \d+\.\d +\| \d+", out)
