"""How the running demo serves: what goes around the queue, one concurrency limit shared by all
events, the upload route's limits, the cache's clean-up, and the one log line of a refusal."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo import pictures, ui
from demo.scenes import example_files
from vlp.limits import MAX_ADD_FILES

EXAMPLE = example_files()[0]
TRIVIAL_INPUTS = (gr.State, gr.Checkbox, gr.Dataset)  # what an event outside the queue may read


def upload(url: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(url + "gradio_api/upload", files=[("files", (name, data, "image/png")) for name, data in files],
                      timeout=60)


# ----------------------------------------------------------------------------- the queue


def test_events_outside_the_queue_read_no_image_table_or_file(app_server):
    unqueued = [fn for fn in app_server.demo.fns.values() if not fn.queue]
    assert unqueued  # the small UI updates
    for fn in unqueued:
        assert all(isinstance(c, TRIVIAL_INPUTS) for c in fn.inputs), (fn.name, fn.inputs)


def test_no_queued_event_can_be_called_around_the_queue(app_server, tmp_path):
    # the request: a 47 KB, 6200×6200 grey PNG sent to the image-changed events through
    # /gradio_api/run/predict cost 3 s and +0.5 GB each, outside the queue and its limits
    grey = tmp_path / "grey.png"
    Image.new("L", (6200, 6200), 128).save(grey)
    response = upload(app_server.url, [("grey.png", grey.read_bytes())])
    image = {"path": response.json()[0], "orig_name": "grey.png", "meta": {"_type": "gradio.FileData"}}
    queued = {index: fn for index, fn in app_server.demo.fns.items() if fn.queue}
    assert any(any(isinstance(c, gr.Image) for c in fn.inputs) and fn.api_name.startswith(("lambda", "on_image"))
               for fn in queued.values())  # the image-changed events are among them
    for index, fn in queued.items():
        data = [image if isinstance(c, gr.Image) else None for c in fn.inputs]
        answer = httpx.post(app_server.url + "gradio_api/run/predict", timeout=30,
                            json={"fn_index": index, "data": data, "session_hash": "around-the-queue"})
        assert answer.status_code == 404 and "join the queue" in answer.text, (fn.name, answer.text)


class Counting:
    """The model, with each call of its image methods lasting at least `delay` seconds and counted
    while it runs: `peak` is the most calls that ran at once, `batched_peak` the most calls of the
    batched endpoints' methods, `calls` the calls of each method."""

    BATCHED = ("caption_many", "match_pairs", "answer_scores_many")  # what the batcher's worker calls
    CALLS = (*BATCHED, "attention", "answer_many", "answer_scores")

    def __init__(self, model, delay: float = 0.3):
        self._model, self._delay = model, delay
        self._lock = threading.Lock()
        self.running = self.batched = self.peak = self.batched_peak = 0
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        attr = getattr(self._model, name)
        if name not in self.CALLS:
            return attr
        batched = name in self.BATCHED

        def counted(*args, **kwargs):
            with self._lock:
                self.running += 1
                self.batched += batched
                self.calls[name] = self.calls.get(name, 0) + 1
                self.peak = max(self.peak, self.running)
                self.batched_peak = max(self.batched_peak, self.batched)
            try:
                time.sleep(self._delay)  # long enough for the queue to start every request it allows
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1
                    self.batched -= batched
        return counted


@pytest.mark.timeout(300)
def test_one_limit_for_the_other_events_and_one_worker_for_the_batched(model, serve, tmp_path):
    from app import build_app

    counting = Counting(model)
    client = Client(serve(build_app(counting, "world:24", cache_dir=tmp_path)), verbose=False)
    image = handle_file(EXAMPLE)
    layers = model.vision_shape()[0]
    calls = {"/caption": (image, "greedy", 3, 30), "/answer": (image, "how many shapes are there?"),
             "/match": (image, "a large red circle")}
    texts = ["a red circle", "a blue square", "a small green triangle", "two shapes", "a large circle"]
    n = ui.CONCURRENCY + 2  # each endpoint alone sends more than the limit
    jobs = [client.submit(*args, api_name=api) for _ in range(n) for api, args in calls.items()]
    jobs += [client.submit(image, texts[i], layers, 0, False, api_name="/attention") for i in range(n)]
    for job in jobs:
        job.result(timeout=240)
    assert counting.calls["attention"] == n
    # each question scored once: its answer is the first of its top five, not a second pass
    assert "answer_many" not in counting.calls and "answer_scores" not in counting.calls, counting.calls
    # the batched endpoints: one worker, requests that wait together in one call
    assert counting.batched_peak == 1, f"{counting.batched_peak} batched calls ran at once"
    assert counting.calls["caption_many"] < n and counting.calls["answer_scores_many"] < n, counting.calls
    assert counting.calls["match_pairs"] < 2 * n, counting.calls  # the captions' scores and /match
    # the others: one limit for all of them, plus the worker
    assert counting.peak <= ui.CONCURRENCY + 1, f"{counting.peak} model calls ran at once"


def test_the_limit_is_the_cores_the_container_allows(tmp_path):
    import os

    cores = len(os.sched_getaffinity(0))
    assert ui.CONCURRENCY == ui.usable_cores() <= cores
    assert ui.usable_cores(tmp_path / "none") == cores  # no container quota: the affinity
    v2 = tmp_path / "v2"
    v2.mkdir()
    for text, expected in [("max 100000", cores), ("100000 100000", 1), ("150000 100000", min(cores, 2))]:
        (v2 / "cpu.max").write_text(text + "\n")
        assert ui.usable_cores(v2) == expected, text
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert ui.usable_cores(tmp_path / "v1") == 1


# ----------------------------------------------------------------------------- uploads


def test_uploads_are_images_and_few_per_request(app_server):
    png = EXAMPLE.read_bytes()
    ok = upload(app_server.url, [(f"scene-{i}.png", png + bytes([i])) for i in range(MAX_ADD_FILES)])
    assert ok.status_code == 200 and len(ok.json()) == MAX_ADD_FILES
    many = upload(app_server.url, [(f"scene-{i}.png", png + bytes([i])) for i in range(MAX_ADD_FILES + 1)])
    assert many.status_code == 400 and many.text == f"One upload holds at most {MAX_ADD_FILES} files."
    for name in ("notes.txt", "program.exe", "no-extension", "picture.svg"):
        wrong = upload(app_server.url, [("scene.png", png), (name, b"MZ" * 100)])
        assert wrong.status_code == 400 and wrong.text.startswith(f"'{name}' is not an image file"), wrong.text
    sneaky = upload(app_server.url, [("zero\u200bwidth.txt", b"x")])
    assert sneaky.status_code == 400 and "zero\\u200bwidth.txt" in sneaky.text
    assert upload(app_server.url, [("scene.PNG", png)]).status_code == 200  # the extension in any case


def test_the_cache_is_cleaned(app_server):
    every, age = ui.DELETE_CACHE
    assert app_server.demo.delete_cache == (every, age) and every <= 3600 and age <= 86400


def test_pictures_reach_the_cache_as_whole_files(client, monkeypatch, tmp_path):
    # Gradio's own PIL path rewrites a content-named cache file in place on every request that
    # draws the same picture; gradio_client fetching it meanwhile read it truncated (issue 10)
    from gradio import processing_utils

    rewrites = []
    monkeypatch.setattr(processing_utils, "save_pil_to_cache", lambda *a, **k: rewrites.append(a) or 1 / 0)
    for _ in range(2):  # the same pictures twice: the second finds them in the cache
        vision, _, rollout, *_ = client.predict(handle_file(EXAMPLE), "", 3, 0, False, api_name="/attention")
        results, _ = client.predict("a red circle", None, 4, False, None, api_name="/search")
    assert not rewrites
    assert Image.open(vision).size == Image.open(rollout).size and len(results) == 4
    assert all(Image.open(r["image"]).mode == "RGB" for r in results)

    same = Image.new("RGB", (8, 8), "red")
    first = pictures.png_file(same, tmp_path)
    with open(first, "rb") as reader:  # a reader of the old file keeps reading it whole
        assert pictures.png_file(same, tmp_path) == first
        assert Image.open(reader).getpixel((0, 0)) == (255, 0, 0)
    assert [p.name for p in tmp_path.iterdir()] == [Path(first).name]  # no staging file left


# ----------------------------------------------------------------------------- the log


def test_a_refused_request_logs_one_line(client, caplog, capfd):
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="demo"):
        for args, api in [((handle_file(EXAMPLE), "beam", "abc", 30), "/caption"),
                          ((handle_file(EXAMPLE), "what is a dog?"), "/answer"),
                          ((handle_file(EXAMPLE), "sideways", 3, 30), "/caption")]:
            with pytest.raises(AppError):
                client.predict(*args, api_name=api)
    lines = [r.getMessage() for r in caplog.records if r.name == "demo"]
    assert len(lines) == 3 and all(line.startswith("refused: ") and "\n" not in line for line in lines), lines
    assert "Traceback" not in capfd.readouterr().err
