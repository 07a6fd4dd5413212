"""The Hugging Face Hub, offline-first: what the OpenCLIP (vlp/openclip.py) and BLIP (vlp/blip.py)
loaders fetch their weights through, and nothing else in vlp imports.

The local cache first; the network only when `HF_HUB_OFFLINE` is not set and the Hub answers
within a few seconds; otherwise one `ModelUnavailable` sentence naming what is missing and the
command that fetches it. It never hangs on a machine without network.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from vlp.errors import BadCheckpoint, ModelUnavailable

HUB_PROBE_TIMEOUT = 3.0  # seconds to wait for the Hub to answer before calling it unreachable
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


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


def _unavailable(what: str, fetch: str, why: str) -> ModelUnavailable:
    return ModelUnavailable(f"{what} is not on this machine and cannot be downloaded ({why}); fetch it with `{fetch}`.")


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
        ModelUnavailable: the files are not cached and cannot be downloaded.
        BadCheckpoint: the repo has none of them.
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
    raise BadCheckpoint(f"The Hub repo {repo_id} has none of {', '.join(filenames)}.")


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
        raise BadCheckpoint(f"The Hub repo {repo_id} lacks {' or '.join(required)}.")
    return folder


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
