"""Shared fixtures: the embedded model, loaded once, and the demo served on a free port."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before anything imports gradio

GALLERY = "world:200"  # small, so the search index builds in seconds


@pytest.fixture(scope="session")
def model():
    import vlp

    return vlp.load()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(model, tmp_path_factory):
    """The demo (app.build_app) served in this process on a free port, with a 200-scene
    gallery cached in a temporary folder. Yields .url, .demo and .port."""
    from app import build_app
    from demo import ui

    demo = build_app(model, GALLERY, cache_dir=tmp_path_factory.mktemp("vlp-cache"))
    port = free_port()
    ui.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", demo=demo, port=port)
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


@pytest.fixture
def serve():
    """Launch gr.Blocks built by a test on a free port, closed when the test ends: serve(blocks)
    returns its URL."""
    from demo import ui

    launched = []

    def launch(blocks) -> str:
        port = free_port()
        ui.launch(blocks, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        launched.append(blocks)
        return f"http://127.0.0.1:{port}/"

    try:
        yield launch
    finally:
        for blocks in launched:
            blocks.close()
