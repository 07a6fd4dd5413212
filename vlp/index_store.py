"""A search index on disk: one folder, written whole or not at all, checked when read.

    images.faiss   the item vectors (any FAISS index of `vlp.faiss_index`)
    items.jsonl    one JSON object an item: id, stale, meta (the caller's metadata) and, for a
                   file, its path, size and mtime_ns
    texts.faiss    the caption vectors (exact)
    texts.jsonl    one caption a line (JSON strings)
    manifest.json  format and version, the model's spec and fingerprint, dimension, metric,
                   index type and parameters, counts, and the size and SHA-256 of each file

No pickle anywhere. Written with `vlp.atomic.atomic_folder`, like checkpoints. A folder that
fails any check is refused with one sentence (`BadCheckpoint`) and left as it is.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import faiss

from vlp.atomic import atomic_folder, recover
from vlp.errors import BadArgument, BadCheckpoint
from vlp.faiss_index import INDEX_TYPES

FORMAT = "vlp-search-index"
FORMAT_VERSION = 2  # 2: the caller's metadata under "meta"; 1 kept scene and caption beside path
MANIFEST = "manifest.json"
FILES = ("images.faiss", "items.jsonl", "texts.faiss", "texts.jsonl")
FILE_KEYS = ("id", "path", "size", "mtime_ns", "stale")  # what an item row holds besides "meta"


@dataclass
class Stored:
    """The contents of an index folder, checked."""

    manifest: dict
    images: faiss.Index
    texts: faiss.Index
    items: list[dict]
    captions: list[str]


def check_save_path(path) -> Path:
    """`path` as a Path if an index may be saved there: it does not exist, is an empty folder,
    or holds an index (which will be replaced). Anything else is refused, so that saving never
    deletes a folder of photos."""
    path = Path(path).expanduser()
    if path.exists() and not (path / MANIFEST).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise BadArgument(f"{path} exists and is not a vlp search index; choose another folder.")
    return path


def write_folder(path, images: faiss.Index, texts: faiss.Index, items: list[dict], captions: list[str],
                 about: dict) -> None:
    """Write an index folder at `path`, replacing the index there whole (a crash at any instant
    leaves the old or the new one); `about` goes into the manifest (model, dim, index_type,
    faiss_index, params, trained_on)."""
    path = check_save_path(path)
    with atomic_folder(path) as tmp:
        faiss.write_index(images, str(tmp / "images.faiss"))
        faiss.write_index(texts, str(tmp / "texts.faiss"))
        _write_jsonl(tmp / "items.jsonl", items)
        _write_jsonl(tmp / "texts.jsonl", captions)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **about,
            "metric": "inner_product",
            "count": len(items),
            "text_count": len(captions),
            "files": {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(tmp.iterdir())},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def read_manifest(path) -> dict:
    """The manifest of the index folder at `path`; BadCheckpoint (one sentence) when there is
    none or it is not one."""
    path = Path(path).expanduser()
    recover(path)  # a save cut off between its renames
    if not (path / MANIFEST).is_file():
        raise BadCheckpoint(f"No search index at {path} (no {MANIFEST}); build one with `python -m vlp index build`.")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadCheckpoint(f"The search index at {path} is corrupt: its {MANIFEST} is unreadable ({err}).") from None
    keys = ("format", "version", "model", "dim", "index_type", "faiss_index", "count", "files")
    if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT or any(k not in manifest for k in keys)
            or manifest["index_type"] not in INDEX_TYPES or manifest["faiss_index"] not in INDEX_TYPES[1:]
            or not isinstance(manifest["model"], dict) or not isinstance(manifest["files"], dict)
            or not all(isinstance(f, dict) for f in manifest["files"].values())):
        raise BadCheckpoint(f"The search index at {path} is corrupt: its {MANIFEST} is not a vlp index manifest.")
    if manifest["version"] not in (1, FORMAT_VERSION):
        raise BadCheckpoint(f"The search index at {path} has format version {manifest['version']}; "
                            f"this vlp reads versions 1 to {FORMAT_VERSION}, so rebuild it.")
    return manifest


def read_folder(path, model) -> Stored:
    """Read and check the index folder at `path` for `model` (its spec, fingerprint, embed_dim).

    Raises:
        BadCheckpoint: one sentence, when the index was built by another model (fingerprint)
            or for another dimension, or when a file is missing, truncated or garbled
            (checksum, JSON or FAISS read failure). Nothing on disk is changed.
    """
    path = Path(path).expanduser()
    manifest = read_manifest(path)
    built = manifest["model"]
    if manifest["dim"] != model.embed_dim:
        raise BadCheckpoint(f"The search index at {path} holds {manifest['dim']}-dimensional embeddings of "
                            f"{built.get('spec')}, but {model.spec} makes {model.embed_dim}-dimensional ones; "
                            "rebuild the index with this model.")
    if built.get("fingerprint") != model.fingerprint:
        raise BadCheckpoint(f"The search index at {path} was built with model {built.get('spec')} "
                            f"(fingerprint {built.get('fingerprint')}), not with {model.spec} "
                            f"(fingerprint {model.fingerprint}); rebuild it with this model.")
    for name in FILES:
        expected = manifest["files"].get(name, {})
        f = path / name
        if not f.is_file():
            raise BadCheckpoint(f"The search index at {path} is incomplete: {name} is missing.")
        if f.stat().st_size != expected.get("bytes") or _sha256(f) != expected.get("sha256"):
            raise BadCheckpoint(f"The search index at {path} is corrupt: {name} does not match its checksum "
                                "(truncated or changed); rebuild it.")
    images, texts = (_read_faiss(path / name) for name in ("images.faiss", "texts.faiss"))
    items, captions = (_read_jsonl(path / name) for name in ("items.jsonl", "texts.jsonl"))
    if manifest["version"] == 1:
        items = [_upgrade_v1(item) if isinstance(item, dict) else item for item in items]
    consistent = (
        images.d == texts.d == manifest["dim"]
        and images.ntotal == len(items) == manifest["count"]
        and texts.ntotal == len(captions)
        and images.metric_type == texts.metric_type == faiss.METRIC_INNER_PRODUCT
        and all(isinstance(item, dict) and item.get("id") == i and isinstance(item.get("meta"), dict)
                for i, item in enumerate(items))
        and all(isinstance(text, str) for text in captions)
    )
    if not consistent:
        raise BadCheckpoint(f"The search index at {path} is corrupt: its files disagree on sizes; rebuild it.")
    return Stored(manifest, images, texts, items, captions)


def _upgrade_v1(item: dict) -> dict:
    """A version-1 item row (scene and caption beside the file keys) in today's form."""
    row = {k: item[k] for k in FILE_KEYS if k in item}
    row["meta"] = {k: v for k, v in item.items() if k not in FILE_KEYS and v is not None}
    return row


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_jsonl(path: Path, rows: list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadCheckpoint(f"The search index at {path.parent} is corrupt: {path.name} is not JSON lines; "
                            "rebuild it.") from None


def _read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        raise BadCheckpoint(f"The search index at {path.parent} is corrupt: FAISS cannot read {path.name}; "
                            "rebuild it.") from None
