"""The vlp demo: `python app.py` serves it on the embedded model, offline.

    python app.py [--model SPEC] [--captioner SPEC] [--gallery world:2000|FOLDER]
                  [--host 127.0.0.1] [--port 7860]

GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (which Hugging Face Spaces sets) are the defaults of
--host and --port; VLP_MODEL, VLP_CAPTIONER and VLP_GALLERY those of the other flags (a Space
takes no command-line flags, only variables). Nothing is fetched from the network at import; the model is loaded once, in
`main`, and `build_app(model, gallery_spec)` returns the page (gr.Blocks) for tests.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import vlp  # noqa: E402
from demo import ui  # noqa: E402
from demo.gallery import DEFAULT_GALLERY, parse_gallery_spec  # noqa: E402
from vlp.errors import VLPError  # noqa: E402


def build_app(model, gallery_spec: str = DEFAULT_GALLERY, cache_dir=None):
    """The demo's gr.Blocks for a loaded model; launch it with `demo.ui.launch(blocks, …)`."""
    return ui.build_demo(model, gallery_spec, cache_dir).blocks


def load_model(spec: str, captioner: str | None = None):
    """The model the demo serves: `spec`, with `captioner` writing its captions when given."""
    model = vlp.load(spec)
    if captioner:
        from vlp.compose import compose

        model = compose(model, vlp.load(captioner))
    return model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python app.py", description="The vlp demo in the browser.")
    env = os.environ.get
    parser.add_argument("--model", default=env("VLP_MODEL", vlp.DEFAULT_SPEC),
                        help="model spec: vlp-tiny (embedded), a checkpoint folder, openclip:ARCH[:TAG], blip:NAME "
                        "(default: $VLP_MODEL or vlp-tiny)")
    parser.add_argument("--captioner", default=env("VLP_CAPTIONER") or None,
                        help="a second model that writes captions and answers, e.g. "
                        "blip:Salesforce/blip-image-captioning-base (default: $VLP_CAPTIONER or none)")
    parser.add_argument("--gallery", default=env("VLP_GALLERY", DEFAULT_GALLERY),
                        help="search gallery: world:N (the first N test scenes, cached) or a folder of images "
                        "(default: $VLP_GALLERY or world:2000)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        parse_gallery_spec(args.gallery)
        model = load_model(args.model, args.captioner)
    except VLPError as err:
        print(f"app.py: {err}", file=sys.stderr)
        return 2
    demo = ui.build_demo(model, args.gallery)
    demo.gallery.start()  # the page serves while the gallery index builds
    ui.launch(demo.blocks, server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
