"""`python app.py` refuses a bad address, port or setting in one sentence, exit status 2, before
it loads the model; an empty server variable counts as unset."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parent.parent


def run_app(*args, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_SERVER", "VLP_"))}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env={**environment, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def taken_port():
    """A port of 127.0.0.1 that something is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.timeout(600)
def test_startup_errors_are_one_sentence(taken_port):
    cases = [
        (["--port", "99999"], {}, "--port must be a port number from 1 to 65535, got '99999'."),
        (["--port", "http"], {}, "--port must be a port number from 1 to 65535, got 'http'."),
        ([], {"GRADIO_SERVER_PORT": "abc"}, "GRADIO_SERVER_PORT must be a port number from 1 to 65535, got 'abc'."),
        (["--port", "7860"], {"GRADIO_SERVER_PORT": "abc"}, "GRADIO_SERVER_PORT must be a port number"),
        (["--port", str(taken_port)], {}, f"port {taken_port} on 127.0.0.1 is in use; choose another with --port."),
        (["--host", "no-such-host.invalid"], {}, "cannot listen on 'no-such-host.invalid': no such host or address."),
        (["--host", "192.0.2.1", "--port", "7860"], {}, "cannot listen on 192.0.2.1:7860 (Cannot assign requested"),
    ]
    for args, env, sentence in cases:
        done = run_app(*args, **env)
        assert done.returncode == 2, (args, env, done.stderr)
        assert done.stderr.startswith(f"app.py: {sentence}") and done.stderr.count("\n") == 1, (args, done.stderr)
        assert done.stdout == ""


@pytest.mark.timeout(300)
def test_an_empty_server_variable_counts_as_unset(taken_port, monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "")
    monkeypatch.setenv("GRADIO_SERVER_PORT", " ")
    args = app.parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", "7860")  # not "" (all interfaces), not a crash
    done = run_app("--port", str(taken_port), GRADIO_SERVER_NAME="", GRADIO_SERVER_PORT="")
    assert done.returncode == 2
    assert done.stderr == f"app.py: port {taken_port} on 127.0.0.1 is in use; choose another with --port.\n"
