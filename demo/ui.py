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
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from vlp.limits import MAX_UPLOAD_BYTES

from demo.about import build_about_tab, model_line
from demo.ask import build_ask_tab
from demo.attention import build_attention_tab
from demo.caption import build_caption_tab
from demo.gallery import DEFAULT_GALLERY, Gallery
from demo.learn import build_learn_tab
from demo.scenes import EXAMPLES, KnownScenes, build_image_column
from demo.search import build_search_tab

CONCURRENCY = 2  # requests run at once per event (a 2-core CPU serves about this many)
QUEUE_SIZE = 64  # requests waiting beyond this are turned away
CSS = """
#image img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
#examples img, #results img { image-rendering: pixelated; }
#header { margin-bottom: 0; }
.step-table { min-width: 200px; }
footer { display: none !important; }
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber")
# Uploads above MAX_UPLOAD_BYTES are refused by the server before any decoding.
LAUNCH = dict(max_file_size=MAX_UPLOAD_BYTES, allowed_paths=[str(EXAMPLES)], show_error=False, share=False,
              theme=THEME, css=CSS, footer_links=["api"])


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
    with gr.Blocks(title="vlp — vision-language pretraining, in the browser") as blocks:
        gr.Markdown("# vlp — caption, ask, search, and see where the model looks\n" + model_line(model),
                    elem_id="header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                image = build_image_column(known)
            with gr.Column(scale=2, min_width=480):
                with gr.Tabs():
                    build_caption_tab(model, image, known)
                    build_ask_tab(model, image, known)
                    build_search_tab(model, image, gallery, blocks)
                    build_attention_tab(model, image)
                    build_learn_tab()
                    build_about_tab(model)
    return Demo(blocks, gallery, known)


def launch(blocks: gr.Blocks, **kwargs):
    """Queue and launch with the demo's limits (file size, concurrency, served paths)."""
    blocks.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return blocks.launch(**{**LAUNCH, **kwargs})
