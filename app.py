"""The vlp demo: `python app.py` serves it on the embedded model, offline.

    python app.py [--model SPEC] [--captioner SPEC] [--gallery world:2000|FOLDER]
                  [--host 127.0.0.1] [--port 7860]

GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (which Hugging Face Spaces sets) are the defaults of
--host and --port; VLP_MODEL, VLP_CAPTIONER and VLP_GALLERY those of the other flags (a Space
takes no command-line flags, only variables). A variable set to an empty value counts as unset.
Nothing is fetched from the network at import; the model is loaded once, in `main`, and
`build_app(model, gallery_spec)` returns the page (gr.Blocks) for tests.

A bad address, a port in use or a bad setting is said in one sentence before the model loads,
and the exit status is 2.
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import socket
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import torch  # noqa: E402

import vlp  # noqa: E402
from demo.gallery import DEFAULT_GALLERY, parse_gallery_spec  # noqa: E402
from vlp.errors import VLPError  # noqa: E402

SERVER_VARIABLES = ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")  # gradio itself reads these too
# torch threads per request: the queue runs one request per core (demo.ui.CONCURRENCY), so each
# computes on one thread; more would make the requests' threads fight for the cores.
TORCH_THREADS = 1
# glibc gives each thread its own malloc arena (up to 8 per core), each keeping the memory its
# thread freed: with Gradio's worker threads the server's memory crept up round after round of
# load; with 2 arenas it stays flat (`python -m vlp bench load`, its memory table).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number for it (glibc's malloc.h)


def build_app(model, gallery_spec: str = DEFAULT_GALLERY, cache_dir=None):
    """The demo's gr.Blocks for a loaded model; launch it with `demo.ui.launch(blocks, …)`."""
    from demo import ui  # gradio reads GRADIO_SERVER_PORT on import: `main` checks it first

    return ui.build_demo(model, gallery_spec, cache_dir).blocks


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas for the threads started from now on; nothing to do without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl)
        return
    libc.mallopt(M_ARENA_MAX, arenas)


def load_model(spec: str, captioner: str | None = None):
    """The model the demo serves: `spec`, with `captioner` writing its captions when given."""
    model = vlp.load(spec)
    if captioner:
        from vlp.compose import compose

        model = compose(model, vlp.load(captioner))
    return model


def setting(name: str, default: str | None = None) -> str | None:
    """The environment variable `name`, or `default` when it is unset or empty."""
    return os.environ.get(name, "").strip() or default


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python app.py", description="The vlp demo in the browser.")
    parser.add_argument("--model", default=setting("VLP_MODEL", vlp.DEFAULT_SPEC),
                        help="model spec: vlp-tiny (embedded), a checkpoint folder, openclip:ARCH[:TAG], blip:NAME "
                        "(default: $VLP_MODEL or vlp-tiny)")
    parser.add_argument("--captioner", default=setting("VLP_CAPTIONER"),
                        help="a second model that writes captions and answers, e.g. "
                        "blip:Salesforce/blip-image-captioning-base (default: $VLP_CAPTIONER or none)")
    parser.add_argument("--gallery", default=setting("VLP_GALLERY", DEFAULT_GALLERY),
                        help="search gallery: world:N (the first N test scenes, cached) or a folder of images "
                        "(default: $VLP_GALLERY or world:2000)")
    parser.add_argument("--host", default=setting("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", default=setting("GRADIO_SERVER_PORT", "7860"),
                        help="port, 1 to 65535 (default: $GRADIO_SERVER_PORT or 7860)")
    return parser.parse_args(argv)


def port_number(text: str, where: str) -> int:
    """`text` as a port number, or ValueError with a sentence naming `where` it came from."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{where} must be a port number from 1 to 65535, got {text!r}.")
    return int(text)


def listen_error(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (no such host, the port in use, an address
    of another machine), in one sentence; None when it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        return f"cannot listen on {host!r}: no such host or address."
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use; choose another with --port."
            return f"cannot listen on {host}:{port} ({err.strerror})."
    return None


def main(argv=None) -> int:
    def fail(sentence: str) -> int:
        print(f"app.py: {sentence}", file=sys.stderr)
        return 2

    for name in SERVER_VARIABLES:  # empty counts as unset, for gradio too
        if not setting(name):
            os.environ.pop(name, None)
    args = parse_args(argv)
    try:
        if "GRADIO_SERVER_PORT" in os.environ:  # gradio reads it on import, even when --port is given
            port_number(os.environ["GRADIO_SERVER_PORT"], "GRADIO_SERVER_PORT")
        port = port_number(args.port, "--port")
    except ValueError as err:
        return fail(str(err))
    problem = listen_error(args.host, port)
    if problem:
        return fail(problem)
    limit_malloc_arenas()
    torch.set_num_threads(TORCH_THREADS)
    try:
        parse_gallery_spec(args.gallery)
        model = load_model(args.model, args.captioner)
    except VLPError as err:
        return fail(str(err))

    from demo import ui

    log = logging.getLogger("demo")  # one line for each request refused with a sentence
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    demo = ui.build_demo(model, args.gallery)
    try:
        ui.launch(demo.blocks, server_name=args.host, server_port=port, prevent_thread_lock=True)
    except OSError as err:  # taken between the check and the launch
        return fail(f"cannot listen on {args.host}:{port} ({err}).")
    demo.gallery.start()  # the page serves while the gallery index builds
    demo.blocks.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
