"""The Gradio demo of vlp: the UI only, no model code.

- `demo.handlers` — plain functions from inputs to outputs (testable without the UI)
- `demo.draw`     — heatmaps, grids of heads and matrices as PIL images (matplotlib)
- `demo.ui`       — the Blocks: components, wiring, launch limits

`python app.py` starts it; `app.build_app(model, gallery_spec)` returns the Blocks.
"""
