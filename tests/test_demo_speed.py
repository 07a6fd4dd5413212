"""What keeps the demo fast under load, and correct while fast: the attention maps computed once
per image and text, the pictures drawn only when shown; /caption, /answer and /match batched,
with the results they get alone; requests that wait together still fail alone, and the batcher
outlives a failing model; and `python -m vlp bench load --quick` runs end to end."""
from __future__ import annotations

import argparse
import logging
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image

from demo import attention
from demo.ask import answer
from demo.batcher import Batcher
from demo.caption import caption, match
from demo.scenes import example_files
from vlp.errors import BadImage, UnknownWords

EXAMPLES = example_files()


class CountingAttention:
    """The model, counting its `attention` calls."""

    def __init__(self, model):
        self._model, self.calls = model, 0

    def attention(self, image, text=None):
        self.calls += 1
        return self._model.attention(image, text)


def pictures(maps) -> list[np.ndarray]:
    p = attention.draw_attention(maps, 2, 1, True, 1)
    return [np.asarray(i) for i in (p.vision, p.grid, p.rollout, p.cross, p.text)]


def test_the_attention_cache_computes_once_per_image_and_text(model):
    counting = CountingAttention(model)
    cache = attention.AttentionCache(counting, size=2)
    first = cache.maps(str(EXAMPLES[0]), "")
    again = cache.maps(Image.open(EXAMPLES[0]), "  ")  # the same pixels, another way in; blank text
    assert counting.calls == 1 and again is first
    assert all(np.array_equal(a, b) for a, b in zip(pictures(first), pictures(again)))
    fresh = attention.compute_attention(model, str(EXAMPLES[0]), "")  # no cache: the same pictures
    assert all(np.array_equal(a, b) for a, b in zip(pictures(first), pictures(fresh)))

    other = cache.maps(str(EXAMPLES[1]), "")  # another image: computed
    assert counting.calls == 2 and other.tokens != first.tokens
    assert not np.array_equal(pictures(first)[0], pictures(other)[0])
    given = cache.maps(str(EXAMPLES[0]), "a small red circle")  # another text: computed
    assert counting.calls == 3 and given.tokens == ["a", "small", "red", "circle"]
    cache.maps(str(EXAMPLES[0]), "")  # evicted (the cache holds 2): computed again
    assert counting.calls == 4

    small = attention.AttentionCache(counting, size=16, budget=attention._bytes(first) - 1)  # too large to keep
    small.maps(str(EXAMPLES[0]), "")
    small.maps(str(EXAMPLES[0]), "")
    assert counting.calls == 6


def test_the_grid_of_heads_is_drawn_only_when_asked(model, monkeypatch):
    maps = attention.compute_attention(model, str(EXAMPLES[0]), "")
    drawn = []
    monkeypatch.setattr(attention, "draw_heads", lambda *a: drawn.append(a) or Image.new("RGB", (8, 8)))
    assert attention.draw_attention(maps, 1, 0, False, 1).grid is None and drawn == []
    assert attention.draw_attention(maps, 1, 0, True, 1).grid is not None and len(drawn) == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_load_quick_runs_every_endpoint_without_errors(capsys):
    from benchmarks import load

    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    assert load.main(parser.parse_args(["--quick"])) == 0
    out = capsys.readouterr().out
    assert out.count("load average") >= 4
    for api in ("caption", "match", "answer", "random_scene", "search", "search_image", "add_images", "attention",
                "worked_example"):
        assert re.search(rf"\| /{api} +\| \d+ +\| 0 +\| \d+", out), api  # mixed load: answered, no errors
    assert re.search(r"app: \d+ requests in [\d.]+ s \([\d.]+ req/s\), 0 errors", out)
    assert re.search(r"\| after warm-up \(a mixed round\) +\| \d+", out)
    assert "- errors under load: 0 (goal 0)" in out and re.search(r"one client ÷ \(echo \+ bare\): \d+\.\d\dx", out)


class Slow:
    """The model, each call of its image methods lasting at least `delay` seconds: requests sent
    together then wait in the queue and in the batcher together."""

    CALLS = ("caption_many", "match_pairs", "answer_scores_many")

    def __init__(self, model, delay: float = 0.3):
        self._model, self._delay = model, delay

    def __getattr__(self, name):
        attr = getattr(self._model, name)
        if name not in self.CALLS:
            return attr

        def slow(*args, **kwargs):
            time.sleep(self._delay)
            return attr(*args, **kwargs)
        return slow


@pytest.mark.timeout(300)
def test_a_refused_request_fails_only_itself(model, serve, tmp_path):
    # Gradio's batching (`batch=True`) would run the requests waiting together as one call and
    # send one request's error to all of them: another visitor's words in your error.
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from app import build_app

    client = Client(serve(build_app(Slow(model), "world:24", cache_dir=tmp_path)), verbose=False)
    image = handle_file(EXAMPLES[0])
    questions = ["how many shapes are there?"] * 3 + ["what is a zebra?"] + ["how many shapes are there?"] * 4
    jobs = [client.submit(image, q, api_name="/answer") for q in questions]
    jobs += [client.submit(image, "sideways", 3, 30, api_name="/caption")]
    jobs += [client.submit(image, "greedy", 3, 30, api_name="/caption") for _ in range(3)]
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(timeout=240))
        except AppError as err:
            outcomes.append(err)
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, AppError)]
    assert refused == [3, 8], [str(outcomes[i]) for i in refused]
    assert "zebra" in str(outcomes[3]) and "sideways" in str(outcomes[8])
    assert all(o[0] == outcomes[0][0] for o in outcomes[:8] if not isinstance(o, AppError))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_demo_times_plain_http_beside_gradio_client(capsys):
    from benchmarks import demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.main(parser.parse_args(["--requests", "2", "--clients", "2"])) == 0
    out = capsys.readouterr().out
    assert out.count("load average") == 2 and re.search(r"start → first page: [\d.]+ s", out)
    for way in ("echo app over plain HTTP", "/caption over plain HTTP", "/caption through gradio_client"):
        assert re.search(rf"\| {re.escape(way)}[^|]*\| \d+ +\| \d+ +\| \d+\.\d\dx", out), way
    for client in ("plain HTTP", "gradio_client"):
        assert re.search(rf"\| {client} +\| 4 +\| 0 +\| \d+ +\| \d+ +\|", out), client  # 2 x 2 captions, no errors


# ----------------------------------------------------------------------------- the batcher


def together(calls: list) -> list:
    """Each of `calls` (functions of no argument) in its own thread at once: what each returned or
    raised, in order. A call still running after 60 s is reported as TimeoutError."""
    outcomes: list = [TimeoutError("still running")] * len(calls)

    def run(i):
        try:
            outcomes[i] = calls[i]()
        except Exception as err:
            outcomes[i] = err

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
        time.sleep(0.002)  # in this order into the batcher
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return outcomes


class Batches(Slow):
    """The slow model, recording how many items each batched call held."""

    def __init__(self, model, delay: float = 0.2):
        super().__init__(model, delay)
        self.sizes: dict[str, list[int]] = {}

    def __getattr__(self, name):
        call = super().__getattr__(name)
        if name not in ("caption_many", "match_pairs", "answer_scores_many"):
            return call

        def recorded(images, *args, **kwargs):
            self.sizes.setdefault(name, []).append(len(images))
            return call(images, *args, **kwargs)
        return recorded


def test_batched_requests_get_what_they_get_alone(model):
    batches = Batches(model)
    batcher = Batcher()
    images = [str(p) for p in EXAMPLES] + [Image.open(EXAMPLES[0])]  # files, and a PIL image
    settings = [("greedy", 3, 30), ("greedy", 3, 4), ("beam", 3, 30), ("beam", 2, 30)]
    questions = ["how many shapes are there?", "what color is the circle?", "is there a blue square?"]
    texts = ["a large red circle", "a small blue square", "two shapes"]
    requests = [(caption, (images[i], *settings[i % len(settings)])) for i in range(len(images))]
    requests += [(answer, (images[i], questions[i % len(questions)])) for i in range(len(images))]
    requests += [(match, (images[i], texts[i % len(texts)])) for i in range(len(images))]
    rng = np.random.default_rng(0)
    requests = [requests[i] for i in rng.permutation(len(requests))]  # kinds mixed in the batcher's list

    alone = [fn(model, *args) for fn, args in requests]
    batched = together([lambda fn=fn, args=args: fn(batches, *args, batcher=batcher) for fn, args in requests])
    assert max(max(s) for s in batches.sizes.values()) > 1, batches.sizes  # they did run together
    for (fn, args), one, many in zip(requests, alone, batched):
        assert not isinstance(many, Exception), (fn.__name__, args, many)
        if fn is match:
            assert many == pytest.approx(one, abs=2e-4), args
        elif fn is caption:
            assert (many.text, many.verdict) == (one.text, one.verdict), args
            assert many.score == pytest.approx(one.score, abs=2e-4), args
        else:
            assert (many.answer, many.verdict) == (one.answer, one.verdict), args
            assert many.scores == pytest.approx(one.scores, abs=1e-4), args


def test_a_bad_request_in_a_burst_gets_its_own_sentence(model, tmp_path, caplog):
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(EXAMPLES[1].read_bytes()[:300])  # its header reads; its pixels do not
    batcher = Batcher()
    slow = Slow(model, delay=0.2)
    image = str(EXAMPLES[0])
    calls = [lambda: match(slow, image, "a large red circle", batcher=batcher)] * 3
    calls += [lambda: match(slow, image, "a purple zebra", batcher=batcher)]  # words the model does not know
    calls += [lambda: match(slow, image, "a small blue square", batcher=batcher)] * 2
    calls += [lambda: caption(slow, image, batcher=batcher)] * 3
    calls += [lambda: caption(slow, str(truncated), batcher=batcher)]
    calls += [lambda: caption(slow, image, batcher=batcher)] * 2
    with caplog.at_level(logging.INFO, logger="demo"):
        outcomes = together(calls)
    failed = {i: o for i, o in enumerate(outcomes) if isinstance(o, Exception)}
    assert sorted(failed) == [3, 9], failed
    assert isinstance(failed[3], UnknownWords) and "zebra" in str(failed[3]) and "red" not in str(failed[3])
    assert isinstance(failed[9], BadImage) and "cut.png" in str(failed[9]) and str(tmp_path) not in str(failed[9])
    assert outcomes[0] == outcomes[1] == outcomes[2] == match(model, image, "a large red circle")
    assert len({o.text for o in outcomes[6:9] + outcomes[10:]}) == 1
    retried = [r.getMessage() for r in caplog.records if "running each alone" in r.getMessage()]
    assert len(retried) == 2 and all("\n" not in line for line in retried), retried  # said, in one line each


class Breaks:
    """The model, whose caption_many fails with a RuntimeError for any batch holding a white image."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def caption_many(self, images, *args, **kwargs):
        time.sleep(0.2)
        if any(img.getpixel((0, 0)) == (255, 255, 255) and len(set(img.getdata())) == 1 for img in images):
            raise RuntimeError("the model broke")
        return self._model.caption_many(images, *args, **kwargs)


def test_the_worker_survives_a_model_exception(model):
    batcher = Batcher()
    breaks = Breaks(model)
    image, white = str(EXAMPLES[0]), Image.new("RGB", (64, 64), "white")
    first = together([lambda: caption(breaks, image, batcher=batcher)] * 2
                     + [lambda: caption(breaks, white, batcher=batcher)]
                     + [lambda: caption(breaks, image, batcher=batcher)] * 2)
    assert [type(o).__name__ for o in first] == ["CaptionResult"] * 2 + ["RuntimeError"] + ["CaptionResult"] * 2
    again = together([lambda: caption(breaks, image, batcher=batcher)] * 3)  # the worker still serves
    assert [o.text for o in again] == [first[0].text] * 3
