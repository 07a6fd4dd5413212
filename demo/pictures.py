"""Output pictures written to files whole, before Gradio copies them into its cache.

Gradio saves a returned PIL image under a hash of its bytes and writes that file again, in place,
on every request that returns the same picture; a client fetching the file meanwhile can read it
truncated (gradio_client under load: "RemoteProtocolError … 0 bytes read"). A returned file path
is copied into the cache atomically instead (`processing_utils.save_file_to_cache`), and never
rewritten once there. So every picture component of the demo is given PNG files: each is written
under a temporary name and renamed into place, named by its content, and removed once old.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
from PIL import Image

FOLDER = Path(tempfile.gettempdir()) / "vlp-demo-pictures"
# Gradio copies a returned file within the request; older files are no longer needed
KEEP_S = 600


def png_file(image: Image.Image, folder: Path = FOLDER) -> str:
    """The path of a PNG file holding `image`, written whole (a reader never sees part of it)."""
    data = io.BytesIO()
    image.save(data, format="PNG")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data.getbuffer()).hexdigest()[:32]}.png"
    fd, staging = tempfile.mkstemp(dir=folder, prefix=".", suffix=".png")
    with os.fdopen(fd, "wb") as f:
        f.write(data.getbuffer())
    os.replace(staging, path)
    _remove_old(folder)
    return str(path)


def _remove_old(folder: Path) -> None:
    cutoff = time.time() - KEEP_S
    for p in folder.iterdir():
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except FileNotFoundError:  # removed by another request meanwhile
            pass


def _as_file(value):
    return png_file(value) if isinstance(value, Image.Image) else value


def picture_output(component: gr.Image | gr.Gallery) -> gr.Image | gr.Gallery:
    """`component` with each PIL image it is given written by `png_file` first. (A wrapper on
    the instance, as `demo.inputs.image_input` does, not a subclass: see there.)"""
    gradio_postprocess = component.postprocess

    def postprocess(value):
        if isinstance(component, gr.Gallery) and value is not None:
            value = [(_as_file(item[0]), *item[1:]) if isinstance(item, tuple) else _as_file(item) for item in value]
        else:
            value = _as_file(value)
        return gradio_postprocess(value)

    component.postprocess = postprocess
    return component
