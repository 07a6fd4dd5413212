"""`python -m vlp bench load`: the demo under a mixed load of every endpoint, over plain HTTP.

It starts, on 127.0.0.1 and free ports, `python app.py` of this tree, an echo app (the same
Gradio, launched by `demo.ui.launch` with the same queue settings, one queued event that reads
an image and returns its text: what Gradio itself costs a request) and, with `--baseline DIR`,
the app of another checkout to compare with (`git archive COMMIT | tar -x -C /tmp/before`).

1. One client. Each endpoint in turn: its handler called in this process (the function the page
   wires, without Gradio: the bare call), the echo app, the app (and the baseline) over HTTP —
   interleaved, `--single` rounds. p50 of each, and the app's p50 over (echo + bare). One more
   row sends /caption by the /call/ route, which opens a new Gradio session for every request.
2. /caption from `--clients` clients at once: requests per second and p50, app and baseline in
   alternate rounds.
3. The mixed load: `--clients` clients, each `--requests` requests cycling through every
   endpoint (shuffled per client), app and baseline in alternate rounds, after one mixed round
   each to warm up. Errors, p50/p95/max per endpoint, each endpoint's p95 over its one-client
   p50 and over the p95 of all the load's requests (does one endpoint hold up the others?).
4. Sessions (over plain HTTP): `--sessions` requests to /caption by the /call/ route, each of
   which opens a new Gradio session, from `--clients` clients, app and baseline in turn, in two
   halves. The demo keeps `demo.ui.SESSIONS` sessions: the second half should add no memory.
5. The servers' resident memory after the warm-up round, after each round of the load and after
   each half of part 4.
Then the goals of issue 10, item 9, against this tree's figures.

Requests go through Gradio 6's queue protocol with httpx, as the page sends them (one session
per client: POST /gradio_api/queue/join, then the session's event stream), the image uploaded
once per client; `--gradio-client` sends them through gradio_client instead (which uploads the
file with every request). The load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.timing import load_average, table

ROOT = Path(__file__).resolve().parent.parent
TABLE = [[1], [2], [3]], [[4], [5], [6]], [[7], [8], [9]]  # the Learn tab's three-token example


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="vlp-tiny", help="model spec (default: vlp-tiny)")
    parser.add_argument("--clients", type=int, default=8, help="clients at once (default: 8)")
    parser.add_argument("--requests", type=int, default=100, help="mixed requests per client (default: 100)")
    parser.add_argument("--single", type=int, default=15, help="one-client rounds of every endpoint (default: 15)")
    parser.add_argument("--baseline", type=Path, help="another checkout whose app.py is measured beside this one")
    parser.add_argument("--gradio-client", action="store_true", help="send the requests through gradio_client")
    parser.add_argument("--gallery", default="world:200", help="the apps' search gallery (default: world:200)")
    parser.add_argument("--sessions", type=int, help="requests by the /call/ route in part 5 (default: 2 x demo.ui.SESSIONS)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 clients x 9 requests, 1 round, 20 sessions")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a server (default: 180)")


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid`, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen

    def rss(self) -> float:
        return rss_mib(self.proc.pid)


@contextlib.contextmanager
def served(name: str, command: list[str], cwd: Path, folder: Path, timeout: float):
    """Run `command` (a server taking `--port`) until the block ends; yields a `Server`."""
    port = free_port()
    log = folder / f"{name}.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "XDG_CACHE_HOME": str(folder / f"cache-{name}")}
    with open(log, "w") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}/", proc)
    try:
        wait_for_page(server, timeout)
        yield server
    except Exception:
        print(f"--- {name} log (last lines) ---\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_page(server: Server, timeout: float) -> float:
    """Seconds until GET / answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {server.proc.returncode} before serving a page")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no page at {server.url} after {timeout:.0f} s")


def app_command(tree: Path, args) -> list[str]:
    return [sys.executable, str(tree / "app.py"), "--model", args.model, "--gallery", args.gallery]


def serve_echo(port: int) -> None:
    """The echo app: Gradio's floor, launched with the demo's queue and limits."""
    import gradio as gr

    from demo import ui
    from demo.inputs import QUEUED, image_input

    with gr.Blocks() as blocks:
        image, text, out = image_input(), gr.Textbox(), gr.Textbox()
        gr.Button().click(lambda img, words: words, [image, text], out, api_name="echo", **QUEUED)
    ui.launch(blocks, server_name="127.0.0.1", server_port=port, quiet=True)


# ----------------------------------------------------------------------------- clients


class Refused(Exception):
    """The server answered a request with an error."""


class HTTPClient:
    """One visitor over plain HTTP with httpx and one kept connection, speaking Gradio 6's queue
    protocol as the page does: its own session, POST /gradio_api/queue/join, then the session's
    event stream GET /gradio_api/queue/data until the event completes."""

    def __init__(self, url: str, image: Path):
        import httpx

        self.url, self.http, self.session = url, httpx.Client(timeout=120), uuid.uuid4().hex
        config = self.http.get(url + "config").json()
        kinds = {c["id"]: c["type"] for c in config["components"]}
        self.events = {d["api_name"]: (d["id"], [kinds[i] == "state" for i in d["inputs"]])
                       for d in config["dependencies"] if d.get("api_name")}
        with open(image, "rb") as f:
            path = self.http.post(url + "gradio_api/upload", files=[("files", (image.name, f, "image/png"))]).json()[0]
        self.image = {"path": path, "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api: str, data: list) -> list:
        fn_index, is_state = self.events[api]
        values = iter(data)  # the session's state (a gr.State input) is the server's: sent as null
        full = [None if state else next(values) for state in is_state]
        answer = self.http.post(self.url + "gradio_api/queue/join", json={
            "data": full, "fn_index": fn_index, "session_hash": self.session, "event_data": None, "trigger_id": None})
        if answer.status_code != 200:
            raise Refused(f"{answer.status_code} {answer.text[:200]}")
        event_id = answer.json()["event_id"]
        with self.http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                message = json.loads(line[len("data: "):])
                if message.get("msg") == "unexpected_error":
                    raise Refused(str(message.get("message"))[:200])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise Refused(str(message.get("output"))[:200])
                    return message["output"]["data"]
        raise Refused("the event stream ended without a result")

    def call_in_a_new_session(self, api: str, data: list) -> list:
        """The same request through POST /gradio_api/call/NAME and its event stream, which opens a
        new session for every request (Gradio then copies the page's configuration)."""
        answer = self.http.post(f"{self.url}gradio_api/call/{api}", json={"data": data})
        if answer.status_code != 200:
            raise Refused(f"{answer.status_code} {answer.text[:200]}")
        kind = None
        with self.http.stream("GET", f"{self.url}gradio_api/call/{api}/{answer.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: ") and kind in ("complete", "error"):
                    if kind == "error":
                        raise Refused(line[:200])
                    return json.loads(line[len("data: "):])
        raise Refused("the event stream ended without a result")


class GradioClient:
    """One visitor through gradio_client (which uploads the image with every request)."""

    def __init__(self, url: str, image: Path):
        from gradio_client import Client, handle_file

        self.client, self.image_file = Client(url, verbose=False), image
        self.image = handle_file(str(image))

    def call(self, api: str, data: list) -> list:
        from gradio_client.exceptions import AppError

        try:
            return self.client.predict(*data, api_name=f"/{api}")
        except AppError as err:
            raise Refused(str(err)[:200]) from None


def requests_of(image, layers: int) -> dict[str, list]:
    """Every endpoint of the demo and the values of one ordinary request to it."""
    q, k, v = ({"headers": ["d1"], "data": t} for t in TABLE)
    return {
        "caption": [image, "greedy", 3, 30],
        "match": [image, "a large red circle"],
        "answer": [image, "how many shapes are there?"],
        "random_scene": ["test"],
        "search": ["a red circle", None, 8, False],
        "search_image": [image, 8],
        "add_images": [[image]],
        "attention": [image, "", layers, 0, False],
        "worked_example": [q, k, v],
    }


def bare_calls(model, tree_cache: Path, image: Path, gallery: str, layers: int) -> dict:
    """Each endpoint's handler, called in this process as the page wires it (no Gradio)."""
    from app import build_app

    fns = {fn.api_name: fn for fn in build_app(model, gallery, tree_cache).fns.values() if fn.api_name}
    values = requests_of(str(image), layers)
    values["worked_example"] = [list(t) for t in TABLE]
    state = {"search": [None], "search_image": [None], "add_images": [None]}  # the session's own index

    def call(api):
        fn, args = fns[api], values[api] + state.get(api, [])
        if fn.batch:
            return [out[0] for out in fn.fn(*[[a] for a in args])]
        return fn.fn(*args)

    return {api: (lambda api=api: call(api)) for api in values}


# ----------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


@dataclass
class Load:
    """What a load run saw: seconds per endpoint, errors per endpoint, wall seconds."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    wall: float = 0.0

    def add(self, other: "Load") -> None:
        for api, s in other.seconds.items():
            self.seconds.setdefault(api, []).extend(s)
        for api, e in other.errors.items():
            self.errors.setdefault(api, []).extend(e)
        self.wall += other.wall

    @property
    def count(self) -> int:
        return sum(map(len, self.seconds.values())) + sum(map(len, self.errors.values()))


def run_load(clients: list, plans: list[list[str]], layers: int) -> Load:
    """Each client sends the requests of its plan, all clients at once."""
    load, lock = Load(), threading.Lock()
    go = threading.Barrier(len(clients))

    def visitor(client, plan):
        values = requests_of(client.image, layers)
        go.wait()
        for api in plan:
            start = time.perf_counter()
            try:
                client.call(api, values[api])
            except Exception as err:  # counted and shown, the load goes on
                with lock:
                    load.errors.setdefault(api, []).append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                load.seconds.setdefault(api, []).append(time.perf_counter() - start)

    return _run_all([threading.Thread(target=visitor, args=(c, p)) for c, p in zip(clients, plans)], load)


def run_sessions(clients: list, count: int, layers: int) -> Load:
    """`count` requests to /caption by the /call/ route, a new session each, shared among the clients."""
    load, lock = Load(), threading.Lock()
    left = iter(range(count))

    def visitor(client):
        data = requests_of(client.image, layers)["caption"]
        while next(left, None) is not None:
            start = time.perf_counter()
            try:
                client.call_in_a_new_session("caption", data)
            except Exception as err:
                with lock:
                    load.errors.setdefault("caption", []).append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                load.seconds.setdefault("caption", []).append(time.perf_counter() - start)

    return _run_all([threading.Thread(target=visitor, args=(c,)) for c in clients], load)


def _run_all(threads: list[threading.Thread], load: Load) -> Load:
    """Start the visitors together, wait for all, and record the wall time in `load`."""
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.wall = time.perf_counter() - start
    return load


def mixed_plans(apis: list[str], clients: int, requests: int, seed: int) -> list[list[str]]:
    """For each client, `requests` endpoints: every endpoint in turn, shuffled per client."""
    rng = random.Random(seed)
    plans = []
    for _ in range(clients):
        plan = [apis[i % len(apis)] for i in range(requests)]
        rng.shuffle(plan)
        plans.append(plan)
    return plans


def main(args) -> int:
    from demo.ui import SESSIONS

    if args.sessions is None:
        args.sessions = 2 * SESSIONS
    if args.quick:
        args.clients, args.requests, args.single = min(args.clients, 2), min(args.requests, 9), min(args.single, 2)
        args.sessions = min(args.sessions, 20)
    import torch

    import app
    import vlp
    from demo.scenes import example_files

    torch.set_num_threads(app.TORCH_THREADS)  # the bare calls run as the server's do
    image = example_files()[0]
    print(f"bench load: {args.clients} clients x {args.requests} mixed requests, "
          f"{'gradio_client' if args.gradio_client else 'plain HTTP (httpx)'}, model {args.model}; {load_average()}")
    connect = GradioClient if args.gradio_client else HTTPClient
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        apps = [stack.enter_context(served("app", app_command(ROOT, args), ROOT, folder, args.timeout))]
        if args.baseline:
            apps.append(stack.enter_context(served("baseline", app_command(args.baseline.resolve(), args),
                                                   args.baseline.resolve(), folder, args.timeout)))
        echo = stack.enter_context(served("echo", [sys.executable, "-m", "benchmarks.load"], ROOT, folder,
                                          args.timeout))
        model = vlp.load(args.model)
        layers = model.vision_shape()[0]
        for server in apps:  # warm up: the gallery built, every endpoint called once
            client = connect(server.url, image)
            for api, data in requests_of(client.image, layers).items():
                client.call(api, data)
        client = connect(echo.url, image)
        for _ in range(3):
            client.call("echo", [client.image, "warm"])
        bare = bare_calls(model, folder / "cache-app" / "vlp", image, args.gallery, layers)
        apis = list(bare)
        for fn in bare.values():
            fn()

        # 1. one client, interleaved: bare, echo, app(s); over HTTP also /caption by the /call/ route
        one = {s.name: connect(s.url, image) for s in [*apps, echo]}
        rows_of = apis + (["caption by /call/"] if not args.gradio_client else [])
        single = {name: {api: [] for api in rows_of} for name in ["bare", *one]}
        echo_data = [one["echo"].image, "a red circle"]

        def once(name: str, api: str) -> None:
            endpoint = api.split()[0]
            if name == "bare":
                bare[endpoint]()
            elif api == "caption by /call/":
                data = echo_data if name == "echo" else requests_of(one[name].image, layers)[endpoint]
                one[name].call_in_a_new_session("echo" if name == "echo" else endpoint, data)
            elif name == "echo":
                one[name].call("echo", echo_data)
            else:
                one[name].call(endpoint, requests_of(one[name].image, layers)[endpoint])

        for _ in range(args.single):
            for api in rows_of:
                for name in ["bare", *one]:
                    start = time.perf_counter()
                    once(name, api)
                    single[name][api].append(time.perf_counter() - start)
        p50 = {name: {api: statistics.median(s) for api, s in by_api.items()} for name, by_api in single.items()}
        print(f"\n1. one client, p50 ms, {args.single} rounds of every endpoint interleaved "
              f"(bare, echo, {', '.join(s.name for s in apps)}); {load_average()}")
        rows = []
        for api in rows_of:
            row = {"endpoint": f"/{api}", "bare": ms(p50["bare"][api]), "echo": ms(p50["echo"][api])}
            for s in apps:
                row[s.name] = ms(p50[s.name][api])
                row[f"{s.name} / (echo + bare)"] = f"{p50[s.name][api] / (p50['echo'][api] + p50['bare'][api]):.2f}x"
            rows.append(row)
        columns = ["endpoint", "bare", "echo", *[c for s in apps for c in (s.name, f"{s.name} / (echo + bare)")]]
        print(table(rows, columns))

        # 2. /caption from many clients; 3. the mixed load — app and baseline in alternate rounds,
        # after one mixed round each to warm up (its memory is where "flat" is measured from)
        clients = {s.name: [connect(s.url, image) for _ in range(args.clients)] for s in apps}
        for s in apps:
            run_load(clients[s.name], mixed_plans(apis, args.clients, len(apis), -1), layers)
        rss = {s.name: [("after warm-up (a mixed round)", s.rss())] for s in apps}
        rounds = 1 if args.quick else 2
        captions = {s.name: Load() for s in apps}
        mixed = {s.name: Load() for s in apps}
        per_round = max(1, args.requests // rounds)
        for r in range(rounds):
            for s in apps:
                plans = [["caption"] * max(1, per_round // 4)] * args.clients
                captions[s.name].add(run_load(clients[s.name], plans, layers))
            caption_load = load_average()
            for s in apps:
                mixed[s.name].add(run_load(clients[s.name], mixed_plans(apis, args.clients, per_round, r), layers))
                rss[s.name].append((f"after round {r + 1} of the load", s.rss()))
            mixed_load = load_average()

        # 4. a new session for every request, by the /call/ route: memory after each half
        sessions = {s.name: Load() for s in apps}
        for half in (1, 2) if not args.gradio_client else ():
            for s in apps:
                sessions[s.name].add(run_sessions(clients[s.name], args.sessions // 2, layers))
                rss[s.name].append((f"after {half * (args.sessions // 2)} requests by /call/ (part 4)", s.rss()))
        sessions_load = load_average()

    print(f"\n2. /caption, {args.clients} clients at once, {rounds} round(s) alternating; {caption_load}")
    rows = []
    rate = {s.name: captions[s.name].count / captions[s.name].wall for s in apps}
    for s in apps:
        seen = captions[s.name]
        row = {"app": s.name, "requests": seen.count, "errors": sum(map(len, seen.errors.values())),
               "p50 ms": ms(statistics.median(seen.seconds.get("caption", [0]))), "req/s": f"{rate[s.name]:.1f}"}
        if s is not apps[0]:
            row["app's req/s ÷ this"] = f"{rate['app'] / rate[s.name]:.2f}x"
        rows.append(row)
    print(table(rows, ["app", "requests", "errors", "p50 ms", "req/s", "app's req/s ÷ this"]))

    print(f"\n3. mixed load, {args.clients} clients x {per_round * rounds} requests, {rounds} round(s) alternating; "
          f"{mixed_load}")
    over = {}
    for s in apps:
        seen = mixed[s.name]
        every = [t for got in seen.seconds.values() for t in got]
        rows = []
        for api in apis:
            got = seen.seconds.get(api, [])
            p95 = percentile(got, 0.95) if got else float("nan")
            if p95 > 3 * p50[s.name][api]:
                over.setdefault(s.name, []).append(f"/{api}")
            rows.append({"endpoint": f"/{api}", "requests": len(got) + len(seen.errors.get(api, [])),
                         "errors": len(seen.errors.get(api, [])),
                         "p50 ms": ms(statistics.median(got)) if got else "-", "p95 ms": ms(p95) if got else "-",
                         "max ms": ms(max(got)) if got else "-",
                         "p95 ÷ one-client p50": f"{p95 / p50[s.name][api]:.1f}x" if got else "-",
                         "p95 ÷ all requests' p95": f"{p95 / percentile(every, 0.95):.2f}x" if got else "-"})
        errors = sum(map(len, seen.errors.values()))
        print(f"\n{s.name}: {seen.count} requests in {seen.wall:.1f} s ({seen.count / seen.wall:.1f} req/s), "
              f"{errors} errors")
        print(table(rows, ["endpoint", "requests", "errors", "p50 ms", "p95 ms", "max ms", "p95 ÷ one-client p50",
                           "p95 ÷ all requests' p95"]))
        for api, messages in seen.errors.items():
            print(f"  /{api}: {messages[0]}")

    print(f"\n4. /caption by the /call/ route, a new session each: {args.sessions} requests from {args.clients} "
          f"clients, in two halves, app and baseline in turn; the demo keeps {SESSIONS} sessions; {sessions_load}")
    for s in apps if not args.gradio_client else ():
        seen = sessions[s.name]
        got = seen.seconds.get("caption", [])
        print(f"{s.name}: {seen.count} requests, {sum(map(len, seen.errors.values()))} errors, p50 "
              f"{ms(statistics.median(got)) if got else '-'} ms, {seen.count / seen.wall:.1f} req/s")

    print(f"\n5. server resident memory, MiB; {sessions_load}")
    rows = [{"when": when, **{s.name: f"{rss[s.name][i][1]:.0f}" for s in apps}}
            for i, (when, _) in enumerate(rss[apps[0].name])]
    print(table(rows, ["when", *[s.name for s in apps]]))

    seen = mixed["app"]
    growth = rss["app"][rounds][1] - rss["app"][0][1]
    sessions_growth = rss["app"][-1][1] - rss["app"][-2][1] if not args.gradio_client else float("nan")
    print("\ngoals (this tree's app):")
    print(f"- errors under load: {sum(map(len, seen.errors.values()))} (goal 0)")
    print(f"- endpoints whose p95 under load is over 3x their one-client p50: "
          f"{', '.join(over.get('app', [])) or 'none'} (goal none)")
    print(f"- memory after warm-up: {growth:+.0f} MiB over {rounds} round(s) of the load (goal flat)")
    print(f"- memory over the second {args.sessions // 2} requests by /call/: {sessions_growth:+.0f} MiB (goal flat)")
    call = p50["app"]["caption"] / (p50["echo"]["caption"] + p50["bare"]["caption"])
    print(f"- /caption at one client ÷ (echo + bare): {call:.2f}x (goal ≤ 1.3x)")
    if args.baseline:
        print(f"- /caption req/s at {args.clients} clients ÷ the baseline's: {rate['app'] / rate['baseline']:.2f}x "
              f"(goal ≥ 3x today's)")
    return 0


if __name__ == "__main__":  # the echo app, started by the benchmark: python -m benchmarks.load --port P
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve_echo(parser.parse_args().port)
