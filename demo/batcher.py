"""Micro-batching of the model endpoints (/caption, /answer, /match): requests that wait at the
same time run as one batched model call, and each still fails alone.

    batcher = Batcher()
    img, text, score = batcher.call(captions, image, model, num_beams, max_length)

Why not Gradio's own batching (`batch=True`): Gradio 6 calls a batch as one function, and one
exception — a refused request's `gr.Error`, raised while Gradio reads one item or in the
function — becomes the answer of every request in the batch (`Queue.process_events` sends one
error payload to all of its events; there is no error per item). So the demo batches behind
Gradio's queue instead:

1. The handler, in Gradio's worker thread, checks its request alone (settings, text, the image's
   header: `checked_file`); a refusal is its own sentence before anything is batched.
2. `call` puts the request on this batcher's list and waits for its result.
3. One worker thread takes the first waiting request and the others with the same `fn` and
   settings (at most `MAX_BATCH`; for up to `BATCH_WAIT` more seconds while requests come in
   together), calls `fn(items, *settings)` once, and hands each request its own row.
4. When that call fails, each request of the batch is run alone, so only the one at fault gets
   the error (its one sentence, by `demo.inputs.safe`); the failed batch is logged, the worker
   goes on.

The two limits: the handlers of the batched endpoints only check and wait, so their queue group
(`BATCHED`) admits `WAITING` requests at once, enough for one batch to run while the next one
gathers; the model work of all of them, reading the images included, runs in this one worker.
The other events share the queue's one limit of a request per core (`demo.ui.CONCURRENCY`), so
at most CONCURRENCY + 1 model calls run at once, each on one torch thread (`app.TORCH_THREADS`).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vlp.errors import BadImage
from vlp.images import image_size

from demo.inputs import NO_IMAGE, without_path

MAX_BATCH = 8  # requests in one model call
BATCH_WAIT = 0.004  # seconds a batch waits for more requests, only while requests come in together
WAITING = 2 * MAX_BATCH  # batched requests admitted by the queue at once: one batch running, one gathering
BATCHED = dict(concurrency_id="vlp-batched", concurrency_limit=WAITING)  # the wiring of the batched events

log = logging.getLogger("demo")


def checked_file(image):
    """`image`, refused alone when it is missing, or a file that is not an image or over the pixel
    limit: read from its header, nothing decoded (the batch decodes it, `checked_image`)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise BadImage(NO_IMAGE)
    if isinstance(image, (str, Path)):
        try:
            image_size(image)
        except BadImage as err:
            raise BadImage(without_path(str(err), image)) from None
    return image


@dataclass
class Request:
    fn: Callable[..., list]  # fn(items, *settings) -> one result per item
    settings: tuple  # batched only with requests of the same fn and settings
    item: Any
    result: Future = field(default_factory=Future)

    @property
    def kind(self) -> tuple:
        return self.fn, self.settings


class Alone:
    """A batcher of one: `fn([item], *settings)[0]` in the caller's thread (the handlers called
    without the page: tests, the bare calls of the benchmarks)."""

    def call(self, fn: Callable[..., list], item, *settings):
        return fn([item], *settings)[0]


ALONE = Alone()


class Batcher:
    """Runs the requests handed to `call` in batches, in one worker thread (started on first use)."""

    def __init__(self, max_size: int = MAX_BATCH, wait: float = BATCH_WAIT):
        self.max_size, self.wait = max_size, wait
        self._waiting: list[Request] = []
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._together = False  # whether the last batch held more than one request

    def call(self, fn: Callable[..., list], item, *settings):
        """`fn([..., item, ...], *settings)`'s row for `item`, computed with the requests of the same
        `fn` and settings that wait with it; raises what `fn([item], *settings)` raises."""
        request = Request(fn, settings, item)
        with self._changed:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="vlp-batcher", daemon=True)
                self._worker.start()
            self._waiting.append(request)
            self._changed.notify()
        return request.result.result()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            self._together = len(batch) > 1
            self._run(batch)

    def _next_batch(self) -> list[Request]:
        """The first waiting request and up to `max_size - 1` more of its kind. A request that came
        alone runs at once (one visitor never waits for others); after a shared batch, the next
        waits up to `wait` seconds to fill, since more are then on their way."""
        with self._changed:
            while not self._waiting:
                self._changed.wait()
            kind = self._waiting[0].kind
            deadline = time.monotonic() + (self.wait if self._together else 0.0)
            while True:
                batch = [r for r in self._waiting if r.kind == kind][: self.max_size]
                left = deadline - time.monotonic()
                if len(batch) == self.max_size or left <= 0:
                    break
                self._changed.wait(left)
            for request in batch:
                self._waiting.remove(request)
        return batch

    def _run(self, batch: list[Request]) -> None:
        fn, settings = batch[0].kind
        try:
            results = fn([r.item for r in batch], *settings)
            if len(results) != len(batch):
                raise RuntimeError(f"{fn.__name__} returned {len(results)} results for {len(batch)} requests")
        except Exception as err:
            if len(batch) == 1:
                batch[0].result.set_exception(err)
                return
            log.warning("a batch of %d %s requests failed (%s: %s); running each alone", len(batch),
                        fn.__name__, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            for request in batch:
                self._run([request])
            return
        for request, result in zip(batch, results):
            request.result.set_result(result)
