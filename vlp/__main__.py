"""Command line: `python -m vlp COMMAND --help`.

Each command lives in the module that owns its concern; that module exposes
`add_arguments(parser)` and `main(args)`. Modules are imported only when their command runs,
so `python -m vlp --help` stays fast.
"""
import argparse
import importlib
import sys

from vlp.errors import VLPError

COMMANDS = {
    "world": ("vlp.world.cli", "draw Shapes World scenes to PNG files and scenes.jsonl"),
    "train": ("vlp.train", "pretrain a VLP model (ITC + ITM + captioning + VQA)"),
    "eval": ("vlp.evaluate", "evaluate a model on a Shapes World split, print JSON"),
    "caption": ("vlp.cli", "caption one or more images"),
    "ask": ("vlp.cli", "answer a question about an image"),
    "words": ("vlp.cli", "list the words a model reads (and the answers it gives)"),
    "index": ("vlp.index_cli", "build or search a FAISS index of images"),
    "bench": ("benchmarks.cli", "benchmarks: attention, train, pretrain, generate, search, demo, load"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m vlp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage or the error, exits
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    command_parser = argparse.ArgumentParser(prog=f"python -m vlp {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser, name)
    args = command_parser.parse_args(argv[1:])
    try:
        return module.main(args, name) or 0
    except VLPError as err:  # bad input or a missing model, in any command: one sentence, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
