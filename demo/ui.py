"""The demo page: the image column on the left, a tab per concern on the right, each built by
its own module; and the launch limits.

    demo = build_demo(vlp.load(), "world:2000")
    demo.gallery.start()            # optional: build the search index in the background
    launch(demo.blocks, server_port=7860)

Each event that scripts may call has an `api_name` (`/caption`, `/match`, `/random_scene`,
`/answer`, `/search`, `/search_image`, `/add_images`, `/attention`, `/worked_example`);
the rest (redraws, small UI updates) are private. A `VLPError` from a handler (vlp's one
sentence about bad input) reaches the user as a `gr.Error` (`demo.inputs.safe`), and the
server keeps serving.

Every event that reads an image, a table or the model goes through the queue; only trivial UI
updates run outside it (`demo.inputs.PRIVATE`). The queue has two limits: /caption, /answer and
/match (`demo.batcher.BATCHED`) only check their request and wait while one worker thread runs
them in batches (`demo.batcher`: why, and the limits); every other event shares one limit of
`CONCURRENCY` requests at once, the cores this process may use.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from vlp.limits import MAX_UPLOAD_BYTES

from demo.about import build_about_tab, build_header
from demo.ask import build_ask_tab
from demo.attention import build_attention_tab
from demo.batcher import Batcher
from demo.caption import build_caption_tab
from demo.gallery import DEFAULT_GALLERY, Gallery
from demo.inputs import PRIVATE, readable_inputs
from demo.learn import build_learn_tab
from demo.scenes import EXAMPLES, KnownScenes, build_image_column
from demo.search import build_search_tab
from demo.style import CSS
from demo.train import build_train_tab
from demo.uploads import UploadLimit


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its affinity, capped by its container's CPU quota (how a
    Space gets its 2 vCPUs while the machine shows many more); a fraction counts as one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity to read
        cores = os.cpu_count() or 1
    try:
        if (cgroup / "cpu.max").is_file():  # cgroup v2: "max 100000" or "200000 100000"
            quota, period = (cgroup / "cpu.max").read_text().split()
        else:  # cgroup v1
            quota, period = ((cgroup / "cpu" / name).read_text().strip()
                             for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        if quota not in ("max", "-1"):
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup files: no quota
        pass
    return cores


CONCURRENCY = usable_cores()  # requests run at once, all events together: one per core
QUEUE_SIZE = 64  # requests waiting beyond this are turned away
# Gradio keeps a session (a copy of the page's configuration, ~185 KiB, and the visitor's gr.State)
# for every session id it sees, and the /call/ route opens a new one for every request: keep the
# most recently used, so the memory stays bounded however many requests come.
SESSIONS = 256
# After every request Gradio's queue rebuilds a pandas summary of the requests it remembers (up to
# 10,000, so the cost grows with uptime) for a monitoring page this demo never enables: read when
# `launch` creates the queue, this makes it once every 10,000 requests.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")
# Every hour, delete uploads and drawn pictures older than a day: a visitor's files (the image on
# the left, their own search images) are read again for as long as their page is open, which a
# day covers; the cache then holds at most a day and an hour of files.
DELETE_CACHE = (3600, 86400)
SHOW_TABS = "() => document.getElementById('tabs-col').scrollIntoView({block: 'start'})"  # the About button's
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber")
# Uploads above MAX_UPLOAD_BYTES are refused by the server before any decoding.
LAUNCH = dict(max_file_size=MAX_UPLOAD_BYTES, allowed_paths=[str(EXAMPLES)], show_error=False, share=False,
              theme=THEME, css=CSS, footer_links=["api"], state_session_capacity=SESSIONS)


@dataclass
class Demo:
    blocks: gr.Blocks  # the page, to launch
    gallery: Gallery  # the shared search index; `gallery.start()` builds it in the background
    known: KnownScenes  # the scenes the demo drew, found again by their pixels


def build_demo(model, gallery_spec: str = DEFAULT_GALLERY, cache_dir=None) -> Demo:
    """The demo for `model`. The search gallery (`world:N` or a folder) is built on first use,
    or in the background after `demo.gallery.start()`."""
    known = KnownScenes()
    gallery = Gallery(model, gallery_spec, cache_dir)
    batcher = Batcher()  # the one worker that runs /caption, /answer and /match in batches
    with gr.Blocks(title="vlp — vision-language pretraining, in the browser", delete_cache=DELETE_CACHE) as blocks:
        about = build_header(model)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="image-col"):
                image = build_image_column(known, model)
            with gr.Column(scale=2, min_width=480, elem_id="tabs-col"):
                with gr.Tabs() as tabs:
                    build_caption_tab(model, image, known, batcher)
                    build_ask_tab(model, image, known, batcher)
                    build_search_tab(model, image, gallery, blocks)
                    build_attention_tab(model, image)
                    build_learn_tab()
                    build_train_tab(model, image)
                    build_about_tab(model)
        about.click(lambda: gr.Tabs(selected="about"), None, [tabs], **PRIVATE).then(None, js=SHOW_TABS, **PRIVATE)
    readable_inputs(blocks)
    return Demo(blocks, gallery, known)


def launch(blocks: gr.Blocks, **kwargs):
    """Queue and launch with the demo's limits (file size and count, concurrency, served paths).
    `api_open=False`: a queued event cannot be called around the queue (`/gradio_api/run/…`)."""
    blocks.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE, api_open=False)
    app_kwargs = {"middleware": [Middleware(UploadLimit)]}  # a new dict each launch: Gradio adds to it
    return blocks.launch(**{**LAUNCH, "app_kwargs": app_kwargs, **kwargs})
