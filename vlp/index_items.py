"""What `SearchIndex.add` takes: a folder, an image file, or a list of images and paths, with
the caller's metadata, one JSON-able dict an item, checked before anything is embedded."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vlp.errors import BadArgument, BadText
from vlp.images import IMAGE_EXTENSIONS


def entries(items, metadata) -> list[tuple[object, dict]]:
    """`items` as (Path of a file, or an in-memory image; its metadata) pairs."""
    if isinstance(items, (str, os.PathLike)):
        if metadata is not None:
            raise BadArgument("Metadata goes with a list of items, one dict each, not with a folder or a file.")
        path = Path(items).expanduser()
        if path.is_dir():
            # not is_dir() rather than is_file(): a broken link is listed, then reported as skipped
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
        elif path.is_file():
            files = [path]
        else:
            raise BadArgument(f"No folder or image file at {path}.")
        return [(f, {}) for f in files]
    if isinstance(items, (Image.Image, np.ndarray, bytes, bytearray)):
        items = [items]  # one in-memory image
    items = list(items)
    paths = [Path(item).expanduser() if isinstance(item, (str, os.PathLike)) else item for item in items]
    return list(zip(paths, check_metadata(metadata, len(items))))


def check_metadata(metadata, n: int) -> list[dict]:
    """One JSON-able dict per item (copies, as they will read back from disk); {} when None."""
    if metadata is None:
        return [{} for _ in range(n)]
    metadata = list(metadata)
    if len(metadata) != n:
        raise BadArgument(f"Got {n} items but {len(metadata)} metadata dicts; give one per item.")
    checked = []
    for meta in metadata:
        if not isinstance(meta, dict):
            raise BadArgument(f"Each item's metadata must be a dict, got {type(meta).__name__}.")
        try:
            meta = json.loads(json.dumps(meta))
        except (TypeError, ValueError) as err:
            raise BadArgument(f"Item metadata is saved as JSON, and this is not JSON-able: {err}.") from None
        caption = meta.get("caption")
        if caption is not None and (not isinstance(caption, str) or not caption.strip()):
            raise BadText(f"A caption in the metadata must be a non-empty string; got {caption!r}.")
        checked.append(meta)
    return checked
