"""`python -m vlp index build|search`: index a folder of images or Shapes World scenes, search it.

    python -m vlp index build --model vlp-tiny --images photos/ --out runs/photos.index
    python -m vlp index build --model vlp-tiny --world test:2000 --out runs/gallery.index
    python -m vlp index search runs/gallery.index "a red circle" -k 5 --rerank
    python -m vlp index search runs/gallery.index --image query.png -k 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from vlp import world
from vlp.errors import BadArgument, VLPError
from vlp.faiss_index import INDEX_TYPES
from vlp.index import AddReport, Hit, SearchIndex
from vlp.index_store import check_save_path

SCENE_CHUNK = 1024  # scenes drawn at a time: a million drawn at once would hold 12 GB of pixels


def add_arguments(parser: argparse.ArgumentParser, command_name: str = "index") -> None:
    parser.description = "Index a folder of images or Shapes World scenes, or search such an index."
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="embed images or world scenes and save an index folder",
                               description="Embed images or world scenes with a model and save an index folder.")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="FOLDER", help="a folder of images, searched recursively")
    source.add_argument("--world", metavar="SPLIT:N", help="the first N scenes of a Shapes World split, e.g. test:2000")
    build.add_argument("--model", default="vlp-tiny", metavar="SPEC", help="model spec for vlp.load (default: vlp-tiny)")
    build.add_argument("--out", required=True, metavar="DIR", help="index folder to write (replaced if it is an index)")
    build.add_argument("--batch-size", type=int, default=64, help="images embedded per model call (default: 64)")
    build.add_argument("--index-type", choices=INDEX_TYPES, default="auto",
                       help="auto: exact below 100k vectors, IVF-PQ with exact re-ranking above (default)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")

    search = actions.add_parser("search", help="search an index by text or by image",
                                description="Search an index folder by text or by image; prints ranked results.")
    search.add_argument("index", metavar="DIR", help="an index folder written by `index build`")
    search.add_argument("query", nargs="?", help="the text to search for, e.g. \"a red circle\"")
    search.add_argument("--image", metavar="PATH", help="search by this image instead of a text")
    search.add_argument("--captions", action="store_true", help="with --image: rank the index's known captions")
    search.add_argument("-k", type=int, default=5, help="number of results (default: 5)")
    search.add_argument("--rerank", action="store_true", help="re-score the candidates with the model's ITM head")
    search.add_argument("--model", metavar="SPEC", help="model spec (default: the one the index was built with)")


def main(args: argparse.Namespace, command_name: str = "index") -> int:
    try:
        return _build(args) if args.action == "build" else _search(args)
    except VLPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _build(args) -> int:
    # check the input and the output before loading a model
    folder = _folder(args.images) if args.images is not None else None
    scenes = _scenes(args.world) if args.world is not None else None
    out = check_save_path(args.out)
    if args.batch_size < 1:
        raise BadArgument(f"--batch-size must be at least 1, got {args.batch_size}.")
    model = _load_model(args.model)
    index = SearchIndex(model, args.index_type, image_of=world.scene_image)
    if folder is not None:
        report = index.add(folder, batch_size=args.batch_size, progress=not args.no_progress)
    else:
        report = _add_scenes(index, scenes, args.batch_size, progress=not args.no_progress)
    if args.no_progress:  # with progress on, `add` has printed what it skipped
        print(report, file=sys.stderr)
    index.save(out)
    print(f"saved {len(index)} items ({index.kind} index, {len(index.texts)} captions, "
          f"model {model.spec} {model.fingerprint}) to {out}")
    return 0


def _folder(name: str) -> Path:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise BadArgument(f"No folder at {folder}.")
    return folder


def _scenes(spec: str) -> list[world.Scene]:
    """The world scenes that `--world SPLIT:N` names."""
    split, _, count = spec.partition(":")
    if split not in world.SPLITS or not count.isdigit() or int(count) < 1:
        raise BadArgument(f"--world takes SPLIT:N with SPLIT one of {', '.join(world.SPLITS)} and N a positive "
                          f"number, e.g. test:2000; got {spec!r}.")
    return world.scenes(split, int(count))


def _add_scenes(index: SearchIndex, scenes: list[world.Scene], batch_size: int, progress: bool) -> AddReport:
    """Draw the scenes and add them with their JSON and captions, SCENE_CHUNK at a time."""
    report = AddReport()
    with tqdm(total=len(scenes), unit="scene", desc="indexing", disable=not progress) as bar:
        for start in range(0, len(scenes), SCENE_CHUNK):
            images, metadata = world.scene_items(scenes[start:start + SCENE_CHUNK])
            report.added += index.add(images, metadata, batch_size=batch_size, progress=False).added
            bar.update(len(images))
    return report


def _search(args) -> int:
    if (args.query is None) == (args.image is None):
        raise BadArgument("Give either a text to search for or --image PATH, not both and not neither.")
    if args.captions and args.image is None:
        raise BadArgument("--captions searches captions for an image; it needs --image PATH.")
    manifest = SearchIndex.read_manifest(args.index)
    model = _load_model(args.model or manifest["model"]["spec"])
    index = SearchIndex.load(args.index, model, image_of=world.scene_image)  # re-ranking draws scenes again
    if args.image is None:
        hits = index.search_text(args.query, k=args.k, rerank=args.rerank)
    elif args.captions:
        hits = index.search_texts_for_image(args.image, k=args.k, rerank=args.rerank)
    elif args.rerank:
        raise BadArgument("--rerank scores texts against images; use it with a text query or with --captions.")
    else:
        hits = index.search_image(args.image, k=args.k)
    score = "ITM probability" if args.rerank else "cosine similarity"
    print(f"# {len(hits)} of {len(index)} items in {args.index}; score: {score}")
    for hit in hits:
        print(f"{hit.rank:>3}  {hit.score:.4f}  {_describe(hit)}")
    return 0


def _describe(hit: Hit) -> str:
    if hit.path is not None:
        return hit.path
    if "scene" in hit.meta:
        return f"{hit.caption}  (scene {hit.id})"
    if hit.caption is not None:
        return hit.caption
    return f"item {hit.id}"


def _load_model(spec: str):
    import vlp

    return vlp.load(spec)
