"""The Gradio demo of vlp: the UI only, no model code. A module per concern; each tab's module
has plain handlers (testable without the UI) and one `build_*_tab` function that makes its
components and wires its events.

- `demo.inputs`    — checked images, `safe` (a VLPError → one gr.Error sentence), the upload component,
                     number sliders, an unreadable request → one sentence, which events are queued
- `demo.scenes`    — the image column: examples, random scenes, the scenes the demo knows
- `demo.caption`   — the Caption tab (caption, match)
- `demo.ask`       — the Ask tab
- `demo.gallery`   — the shared search gallery and its cache (`world_gallery`)
- `demo.search`    — the Search tab (and a visitor's own images)
- `demo.attention` — the Attention tab
- `demo.learn`     — the Learn tab (attention worked out by hand)
- `demo.train`     — the Train tab; `demo.training` — its run (one per server, in a child process)
- `demo.about`     — the About tab (model card) and the header line
- `demo.draw`      — heatmaps, grids of heads and matrices as PIL images (matplotlib)
- `demo.pictures`  — output pictures as whole PNG files (Gradio's own cache rewrites them in place)
- `demo.ui`        — `build_demo` (the page from the tabs) and the launch limits
- `demo.uploads`   — the upload route's limits Gradio has no setting for (file count, image types)

`python app.py` starts it; `app.build_app(model, gallery_spec)` returns the Blocks.
"""
