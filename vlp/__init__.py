"""vlp: a readable vision-language pretraining core.

    import vlp
    m = vlp.load()                 # the embedded vlp-tiny model in assets/
    m.caption("scene.png")
    index = vlp.SearchIndex.build(m, "photos/")
"""
from __future__ import annotations

from pathlib import Path

from vlp.attention import AttentionMaps, worked_example
from vlp.errors import VLPError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_SPEC = "vlp-tiny"

__all__ = ["load", "SearchIndex", "AttentionMaps", "VLPError", "worked_example", "ASSETS", "DEFAULT_SPEC"]


def load(spec: str = DEFAULT_SPEC, device: str | None = "auto"):
    """Load a model by spec.

    Specs:
        "vlp-tiny"                       the embedded model in assets/vlp-tiny
        "PATH"                           a vlp checkpoint folder (config.json, model.safetensors, …)
        "openclip:ARCH[:TAG_OR_FILE]"    OpenCLIP weights in vlp's own layers
        "blip:NAME_OR_FOLDER"            BLIP through transformers
    Returns:
        a model of the protocol in vlp/protocol.py.
    Raises:
        vlp.errors.VLPError: one sentence naming what is missing and how to get it.
    """
    spec = spec.strip()
    if spec.startswith("openclip:"):  # the real-weights loaders are imported only when asked for
        from vlp.openclip import load_openclip

        return load_openclip(spec.removeprefix("openclip:"), device)
    if spec.startswith("blip:"):
        from vlp.blip import load_blip

        return load_blip(spec.removeprefix("blip:"), device)
    from vlp.api import VLPModel
    from vlp.checkpoint import is_checkpoint
    from vlp.errors import ModelUnavailable

    path = ASSETS / spec if spec == DEFAULT_SPEC else Path(spec).expanduser()
    if not is_checkpoint(path):
        raise ModelUnavailable(
            f"No vlp checkpoint at {path} (a folder with config.json and model.safetensors); "
            "train one with `python -m vlp train --out runs/NAME` or use vlp-tiny."
        )
    return VLPModel.load(path, device)


def __getattr__(name: str):
    if name == "SearchIndex":  # imported on first use: faiss is not needed to caption
        from vlp.index import SearchIndex

        return SearchIndex
    raise AttributeError(f"module 'vlp' has no attribute {name!r}")
