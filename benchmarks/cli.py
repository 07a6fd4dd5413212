"""`python -m vlp bench NAME`: each benchmark is a module here with add_arguments(parser) and main(args)."""
import argparse
import importlib

BENCHMARKS = {
    "attention": "our attention (fused and explicit) against torch's, as ratios to SDPA",
    "train": "pretraining samples/s: today's step, each lever of the cpu recipe, the data, process layouts",
    "pretrain": "time to each bar: a recipe against today's, trained in turns for a wall-clock budget",
    "generate": "caption latency and tokens/s with and without the KV cache",
    "search": "FAISS exact vs approximate search: build time, memory, queries/s, recall@10",
    "demo": "demo start-up time and caption latency through the HTTP API vs the bare model",
    "load": "the demo under a mixed load of every endpoint over HTTP, beside Gradio's echo floor and the bare handlers",
}


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    parser.add_argument("benchmark", choices=BENCHMARKS, help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (see its --help)")


def main(args, command_name: str) -> int:
    module = importlib.import_module(f"benchmarks.{args.benchmark}")
    parser = argparse.ArgumentParser(prog=f"python -m vlp bench {args.benchmark}", description=BENCHMARKS[args.benchmark])
    module.add_arguments(parser)
    return module.main(parser.parse_args(args.options)) or 0
