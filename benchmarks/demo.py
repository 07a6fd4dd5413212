"""`python -m vlp bench demo`: how fast the demo starts and what serving a caption costs.

1. Start-up: `python app.py` in a subprocess, seconds until GET / first answers 200.
2. One caption at a time, five ways in turns (A, B, C, D, E, A, …, `--requests` rounds):
   `model.caption` in this process (the bare model); `demo.caption.caption`, the handler behind
   /caption (read the file, caption, score the caption, compare with the scene's truth), in
   process; the echo app (the same Gradio, launched with the demo's queue settings, one event
   that reads an image and returns a text: Gradio's own cost, the floor); /caption over plain
   HTTP (httpx, Gradio 6's queue protocol in one session, as the page sends it); and /caption
   through gradio_client (which uploads the image with every request).
3. `--clients` clients at once sending /caption, over plain HTTP and through gradio_client in
   alternate rounds: p50, p95 and requests per second; the server runs the requests that wait
   together in one batch (`demo.batcher`, up to `MAX_BATCH`), so the latency includes waiting.
The load average is printed beside the figures. Every server runs on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load import (ROOT, GradioClient, HTTPClient, Load, app_command, ms, percentile, run_load, served)
from benchmarks.timing import load_average, table


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="vlp-tiny", help="model spec for the app and the bare calls (default: vlp-tiny)")
    parser.add_argument("--requests", type=int, default=40, help="caption rounds at one client, and per client at many (default: 40)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second run (default: 8)")
    parser.add_argument("--gallery", default="world:200", help="the app's search gallery (default: world:200)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the first page (default: 180)")


def main(args) -> int:
    import torch

    import app
    import vlp
    from demo.batcher import MAX_BATCH
    from demo.caption import caption
    from demo.scenes import KnownScenes, example_files, load_examples
    from vlp.images import load_image

    torch.set_num_threads(app.TORCH_THREADS)  # in process as in the server
    image = example_files()[0]
    model = vlp.load(args.model)
    picture = load_image(image)
    known = KnownScenes()
    load_examples(known)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        start = time.perf_counter()
        server = stack.enter_context(served("app", app_command(ROOT, args), ROOT, folder, args.timeout))
        first_page = time.perf_counter() - start
        echo = stack.enter_context(served("echo", [sys.executable, "-m", "benchmarks.load"], ROOT, folder,
                                          args.timeout))
        http, gradio, floor = HTTPClient(server.url, image), GradioClient(server.url, image), HTTPClient(echo.url, image)
        http.call("search", ["a red circle", None, 1, False])  # waits for the gallery build
        ways = {
            "model.caption (bare, in process)": lambda: model.caption(picture),
            "demo.caption.caption (the handler, in process)": lambda: caption(model, str(image), "greedy", 3, 30, known),
            "echo app over plain HTTP (Gradio's floor)": lambda: floor.call("echo", [floor.image, "a red circle"]),
            "/caption over plain HTTP": lambda: http.call("caption", [http.image, "greedy", 3, 30]),
            "/caption through gradio_client": lambda: gradio.call("caption", [gradio.image, "greedy", 3, 30]),
        }
        for fn in ways.values():  # warm-up
            fn()
            fn()
        seconds = {name: [] for name in ways}
        for _ in range(args.requests):
            for name, fn in ways.items():
                t = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - t)
        one_load = load_average()

        many = {"plain HTTP": Load(), "gradio_client": Load()}
        clients = {"plain HTTP": [HTTPClient(server.url, image) for _ in range(args.clients)],
                   "gradio_client": [GradioClient(server.url, image) for _ in range(args.clients)]}
        for _ in range(2):  # alternate rounds
            for way, visitors in clients.items():
                many[way].add(run_load(visitors, [["caption"] * max(1, args.requests // 2)] * args.clients, 0))

    p50 = {name: statistics.median(s) for name, s in seconds.items()}
    floor_p50, handler_p50 = p50["echo app over plain HTTP (Gradio's floor)"], p50[
        "demo.caption.caption (the handler, in process)"]
    print(f"start → first page: {first_page:.1f} s (python app.py --model {args.model} --gallery {args.gallery})")
    print(f"\none caption at a time, greedy, example {image.name}, {args.requests} rounds in turns; {one_load}")
    rows = [{"what": name, "p50 ms": ms(p50[name]), "p95 ms": ms(percentile(s, 0.95)),
             "p50 ÷ (echo + handler)": f"{p50[name] / (floor_p50 + handler_p50):.2f}x"}
            for name, s in seconds.items()]
    print(table(rows, ["what", "p50 ms", "p95 ms", "p50 ÷ (echo + handler)"]))
    print(f"\n/caption from {args.clients} clients at once, 2 rounds alternating; the server runs up to {MAX_BATCH} "
          f"in one batch; {load_average()}")
    rows = []
    for way, seen in many.items():
        got = seen.seconds.get("caption", [])
        rows.append({"client": way, "requests": seen.count, "errors": sum(map(len, seen.errors.values())),
                     "p50 ms": ms(statistics.median(got)) if got else "-", "p95 ms": ms(percentile(got, 0.95)) if got else "-",
                     "req/s": f"{seen.count / seen.wall:.1f}"})
    print(table(rows, ["client", "requests", "errors", "p50 ms", "p95 ms", "req/s"]))
    return 0
