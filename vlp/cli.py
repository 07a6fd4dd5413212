"""`python -m vlp caption IMAGE…`, `python -m vlp ask IMAGE "QUESTION"` and `python -m vlp words`."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    parser.add_argument("--model", default="vlp-tiny", metavar="SPEC", help="model spec (default: vlp-tiny)")
    parser.add_argument("--device", default="auto")
    if command_name == "words":
        return
    if command_name == "caption":
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--beams", type=int, default=1, help="beam width (1: greedy)")
        parser.add_argument("--max-length", type=int, default=30)
    else:
        parser.add_argument("image", help="an image file")
        parser.add_argument("question", help='e.g. "what color is the circle?"')
        parser.add_argument("-k", type=int, default=0, help="also print the k most likely answers")


def main(args, command_name: str) -> int:
    """Bad input or a missing model raises a VLPError, which `python -m vlp` prints as one sentence."""
    import vlp

    model = vlp.load(args.model, args.device)
    if command_name == "words":
        return _words(model)
    if command_name == "caption":
        for path in args.images:
            print(f"{path}\t{model.caption(path, num_beams=args.beams, max_length=args.max_length)}")
            _notice(model, path)
    else:
        print(model.answer(args.image, args.question))
        _notice(model, args.image)
        for word, p in model.answer_scores(args.image, args.question, args.k) if args.k else []:
            print(f"  {word}\t{p:.3f}")
    return 0


def _notice(model, image) -> None:
    """The model's word that the image is outside its world, on stderr (stdout stays the results)."""
    notice = model.domain_notice(image)
    if notice:
        print(f"note: {image}: {notice}", file=sys.stderr)


def _words(model) -> int:
    words = model.vocabulary()
    if words is None:
        print(f"{model.spec} reads any text (an open vocabulary).")
        return 0
    print(f"{model.spec} reads these {len(words)} words:")
    print(" ".join(words))
    return 0
