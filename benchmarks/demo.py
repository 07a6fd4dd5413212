"""`python -m vlp bench demo`: how fast the demo starts and what serving a caption costs.

1. The bare model: `model.caption(image)` in this process, p50/p95 over --requests calls; and
   the handler behind /caption (`demo.caption.caption`: read the file, caption, score the
   caption with ITM, compare with the scene's truth), also in process.
2. Start-up: `python app.py --port P` in a subprocess, seconds until GET / first answers 200.
3. The HTTP API: `/caption` through gradio_client, p50/p95 per request with 1 client and
   with --clients clients at once (each its own session); the queue serves
   `demo.ui.CONCURRENCY` at a time, so with 8 clients the latency includes waiting.
The serving overhead is the API's p50 over the bare p50. Everything runs on this machine's
CPU (or GPU); the bare calls run before the server starts, so they do not compete with it.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.timing import table

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="vlp-tiny", help="model spec for the app and the bare calls (default: vlp-tiny)")
    parser.add_argument("--requests", type=int, default=40, help="caption requests per measurement (default: 40)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second API run (default: 8)")
    parser.add_argument("--gallery", default="world:200",
                        help="the app's search gallery (default: world:200, built in a temporary cache)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the first page (default: 180)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _row(what: str, clients, seconds: list[float], wall: float, bare_p50: float | None = None) -> dict:
    p50 = statistics.median(seconds)
    row = {"what": what, "clients": clients, "requests": len(seconds), "p50 ms": f"{p50 * 1000:.0f}",
           "p95 ms": f"{_percentile(seconds, 0.95) * 1000:.0f}", "req/s": f"{len(seconds) / wall:.1f}"}
    row["p50 / bare p50"] = f"{p50 / bare_p50:.2f}x" if bare_p50 else "1.00x"
    return row


def _wait_for_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with status {proc.returncode} before serving a page")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and response.read(64):
                    return time.perf_counter()
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no page at {url} after {timeout:.0f} s")


def _api_latencies(url: str, image: str, clients: int, per_client: int) -> tuple[list[float], float]:
    """Latency of every /caption request when `clients` sessions call at once; (seconds, wall)."""
    from gradio_client import Client, handle_file

    sessions = [Client(url, verbose=False) for _ in range(clients)]
    latencies: list[float] = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def run(client):
        go.wait()
        for _ in range(per_client):
            t = time.perf_counter()
            client.predict(handle_file(image), "greedy", 3, 30, api_name="/caption")
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=run, args=(c,)) for c in sessions]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start


def main(args) -> int:
    import vlp
    from demo.caption import caption
    from demo.scenes import KnownScenes, example_files, load_examples
    from demo.ui import CONCURRENCY
    from vlp.images import load_image

    image = str(example_files()[0])
    model = vlp.load(args.model)
    picture = load_image(image)
    for _ in range(3):
        model.caption(picture)
    bare = []
    start = time.perf_counter()
    for _ in range(args.requests):
        t = time.perf_counter()
        model.caption(picture)
        bare.append(time.perf_counter() - t)
    bare_wall = time.perf_counter() - start
    bare_p50 = statistics.median(bare)
    handler = []  # what /caption runs: load the file, caption, score the caption (ITM), check the truth
    known = KnownScenes()
    load_examples(known)
    start = time.perf_counter()
    for _ in range(args.requests):
        t = time.perf_counter()
        caption(model, image, "greedy", 3, 30, known)
        handler.append(time.perf_counter() - t)
    handler_wall = time.perf_counter() - start
    del model

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    rows = [_row("model.caption (bare, in process)", "-", bare, bare_wall),
            _row("demo.caption.caption (in process)", "-", handler, handler_wall, bare_p50)]
    with tempfile.TemporaryDirectory() as cache:
        env["XDG_CACHE_HOME"] = cache
        log = open(Path(cache) / "app.log", "w+")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--model", args.model,
                                 "--gallery", args.gallery], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            first_page = _wait_for_page(url, proc, args.timeout) - t0
            from gradio_client import Client, handle_file

            warm = Client(url, verbose=False)
            warm.predict("a red circle", None, 1, False, api_name="/search")  # waits for the gallery build
            for _ in range(3):
                warm.predict(handle_file(image), "greedy", 3, 30, api_name="/caption")
            one, one_wall = _api_latencies(url, image, 1, args.requests)
            rows.append(_row("/caption via gradio_client", 1, one, one_wall, bare_p50))
            per_client = max(1, args.requests // args.clients)
            many, many_wall = _api_latencies(url, image, args.clients, per_client)
            rows.append(_row("/caption via gradio_client", args.clients, many, many_wall, bare_p50))
        except Exception:
            log.seek(0)
            print(log.read()[-3000:], file=sys.stderr)
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    print(f"start → first page: {first_page:.1f} s (python app.py --model {args.model} --gallery {args.gallery})")
    print(f"caption latency, greedy, example {Path(image).name}; the server runs {CONCURRENCY} requests at a time")
    print(table(rows, ["what", "clients", "requests", "p50 ms", "p95 ms", "req/s", "p50 / bare p50"]))
    return 0
