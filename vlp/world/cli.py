"""`python -m vlp world`: draw scenes of a split to PNG files, with their JSON, caption and questions."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from vlp.world.draw import render
from vlp.world.language import caption
from vlp.world.questions import question_types, sample_question
from vlp.world.scene import SPLITS, sample_scene, scene_rng

def _int_in(low: int, high: int):
    """An argparse type: a whole number in low..high."""
    def parse_int(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number in {low}..{high}, got {value}")
        return value
    return parse_int


def add_arguments(parser: argparse.ArgumentParser, command_name: str = "world") -> None:
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split (default: test)")
    parser.add_argument("--n", type=_int_in(1, 1_000_000), default=16, help="how many scenes (default: 16)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files and scenes.jsonl")
    parser.add_argument("--size", type=_int_in(1, 2048), default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--start", type=_int_in(0, 10**9), default=0, help="index of the first scene (default: 0)")


def main(args: argparse.Namespace, command_name: str = "world") -> int:
    """Write scenes start..start+n-1 of a split as DIR/{index:05d}.png and DIR/scenes.jsonl."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"vlp {command_name}: --out {out} is a file, not a folder.", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    indices = range(args.start, args.start + args.n)
    with open(out / "scenes.jsonl", "w") as f:
        for index in indices:
            scene = dataclasses.replace(sample_scene(args.split, index), size=args.size)
            name = f"{index:05d}.png"
            render(scene).save(out / name)
            rng = scene_rng(args.split, index, stream=1)
            types = question_types(scene)
            chosen = [types[k] for k in rng.permutation(len(types))[:3]]  # three different types
            questions = [sample_question(scene, rng, t) for t in chosen]
            record = {"file": name, "split": args.split, "index": index, "scene": scene.to_dict(),
                      "caption": caption(scene),
                      "questions": [{"question": q, "answer": a, "type": t} for q, a, t in questions]}
            f.write(json.dumps(record) + "\n")
    print(f"wrote {args.n} {args.split} scenes to {out}: "
          f"{indices[0]:05d}.png .. {indices[-1]:05d}.png and scenes.jsonl")
    return 0
