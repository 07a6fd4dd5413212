"""Real weights: what the OpenCLIP (vlp/clip.py) and BLIP (vlp/blip.py) loaders share.

- Fetching from the Hugging Face Hub without ever hanging: the local cache first; the network
  only when `HF_HUB_OFFLINE` is not set and the Hub answers within a few seconds; otherwise one
  ValueError sentence naming what is missing and the command that fetches it.
- The fingerprint of a set of weights, and turning preprocessed pixels back into the image a
  model saw (for drawing attention over it).
- The sentences a model says when asked for something it cannot do.

    vlp.load("openclip:ViT-B-32:laion2b_s34b_b79k")   → load_openclip("ViT-B-32:laion2b_s34b_b79k")
    vlp.load("blip:Salesforce/blip-image-captioning-base")  → load_blip(...)
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

# Models to name when one cannot do what was asked.
CAPTIONER = "blip:Salesforce/blip-image-captioning-base"
ANSWERER = "blip:Salesforce/blip-vqa-base"
MATCHER = "blip:Salesforce/blip-itm-base-coco"
EMBEDDER = "openclip:ViT-B-32:laion2b_s34b_b79k"

HUB_PROBE_TIMEOUT = 3.0  # seconds to wait for the Hub to answer before calling it unreachable
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def load_openclip(spec: str, device: str | None = "auto"):
    """`ARCH[:TAG_OR_FILE]` → a CLIPModel: OpenCLIP weights in vlp's own layers (vlp/clip.py)."""
    from vlp.clip import load_openclip as load

    return load(spec, device)


def load_blip(name: str, device: str | None = "auto"):
    """`NAME_OR_FOLDER` → a BLIPModel: captioning, VQA or ITM through transformers (vlp/blip.py)."""
    from vlp.blip import load_blip as load

    return load(name, device)


# --- The Hub, offline-first -------------------------------------------------------------------


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: then no network is tried at all.

    Read from the environment on each call (huggingface_hub reads it once, at import).
    """
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (f or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags
    )


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """Whether the Hub's host accepts a connection within `timeout` seconds.

    huggingface_hub retries a failed request with back-off (over 20 s in all); this probe lets
    a machine without network fail at once instead. Behind a proxy the probe cannot tell, so
    the download is left to try.
    """
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return True
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _unavailable(what: str, fetch: str, why: str) -> ValueError:
    return ValueError(f"{what} is not on this machine and cannot be downloaded ({why}); fetch it with `{fetch}`.")


def _network_check(what: str, fetch: str) -> None:
    if hub_offline():
        raise _unavailable(what, fetch, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        raise _unavailable(what, fetch, "huggingface.co does not answer")


def hub_file(repo_id: str, filenames: list[str], what: str, fetch: str) -> Path:
    """The first of `filenames` that the Hub repo `repo_id` has: from the cache, else downloaded.

    Args:
        what: what the files are, for the error sentence ("OpenCLIP weights ViT-B-32:openai").
        fetch: the shell command that fetches them, for the error sentence.
    Raises:
        ValueError: the files are not cached and cannot be downloaded, or the repo has none.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name, local_files_only=True))
        except EntryNotFoundError:  # LocalEntryNotFoundError: not in the cache
            continue
    _network_check(what, fetch)
    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name))
        except EntryNotFoundError:  # the repo has no such file: try the next name
            continue
        except (HfHubHTTPError, OSError) as err:
            raise _unavailable(what, fetch, f"the Hub said: {_first_line(err)}") from None
    raise ValueError(f"The Hub repo {repo_id} has none of {', '.join(filenames)}.")


def hub_snapshot(repo_id: str, patterns: list[str], required: list[str], what: str, fetch: str) -> Path:
    """A local folder holding the files of `repo_id` that match `patterns`: cached, else downloaded.

    Args:
        required: glob patterns the folder must match, each at least once, to count as complete.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    def complete(folder: Path) -> bool:
        return all(any(folder.glob(pattern)) for pattern in required)

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
        if complete(folder):
            return folder
    except (EntryNotFoundError, OSError):
        pass
    _network_check(what, fetch)
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (HfHubHTTPError, OSError) as err:
        raise _unavailable(what, fetch, f"the Hub said: {_first_line(err)}") from None
    if not complete(folder):
        raise ValueError(f"The Hub repo {repo_id} lacks {' or '.join(required)}.")
    return folder


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")


# --- Shared by the model classes --------------------------------------------------------------


def fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """A short sha256 over the names and bytes of the weights, independent of the file format."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


def pixels_to_image(pixels: torch.Tensor, mean, std) -> Image.Image:
    """One preprocessed image (3, H, W) → the RGB PIL image the model saw (normalisation undone)."""
    mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    x = (pixels.detach().float().cpu() * std + mean).clamp(0, 1)
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def check_texts(texts) -> list[str]:
    """A list of strings (a lone string becomes a list of one); anything else is refused."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("Texts must be strings.")
    return texts


def check_labels(labels, templates) -> tuple[list[str], list[str]]:
    """Zero-shot labels and prompt templates, checked: labels unique and non-empty, "{}" in each template."""
    labels = [str(label).strip() for label in labels]
    if not labels or not all(labels):
        raise ValueError("Give at least one non-empty label to classify into.")
    if len(set(labels)) != len(labels):
        raise ValueError("Each label must be given once.")
    templates = list(templates or ["a photo of a {}."])
    if not all("{}" in t for t in templates):
        raise ValueError('Each prompt template needs a "{}" where the label goes, e.g. "a photo of a {}.".')
    return labels, templates
