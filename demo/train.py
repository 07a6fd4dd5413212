"""The Train tab: pretrain vlp's own model from random weights in the browser and watch it learn
(its four losses, and where its class token looks on one fixed scene), then caption and ask with
it beside the demo's model. The run itself is `demo.training.LiveRun`: one for the whole server."""
from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from vlp import ASSETS, world
from vlp.model import OBJECTIVES
from vlp.errors import BadArgument
from vlp.limits import MAX_QUESTION_CHARS, MAX_TRAIN_SECONDS, MAX_TRAIN_STEPS, check_text

from demo.attention import draw_vision
from demo.inputs import PRIVATE, QUEUED_PRIVATE, checked_image, number_slider, one_message, safe
from demo.pictures import png_file, picture_output
from demo.training import BATCH, SIZES, SNAPSHOT_EVERY, LiveRun, RunView

WATCHED = world.sample_scene("test", 4)  # the fixed scene whose attention the tab redraws (example test-00004)
TICK_S = 1.0  # how often a page reads the run
SHIPPED = json.loads((ASSETS / "vlp-tiny" / "metrics.json").read_text())["train"]  # how vlp-tiny was trained

EXPLAINED = f"""\
Pretrain vlp's own model **from random weights** on fresh Shapes World scenes, with all four
objectives (ITC, ITM, captioning, VQA), and watch it learn: the losses fall, and the class token
of the ViT moves its attention from everywhere to the objects of a fixed scene. Each step draws
{BATCH} new scenes. `micro` (0.3 M parameters) learns its first words in a few hundred steps;
`tiny` (vlp-tiny's size) is slower per step. vlp-tiny itself took {SHIPPED["steps"]:,} steps of
{SHIPPED["batch_size"]} scenes.

One run at a time for the whole server, at most {MAX_TRAIN_STEPS} steps and {MAX_TRAIN_SECONDS // 60}
minutes, at the lowest CPU priority, so the other tabs keep answering. The same run from the
command line: `python -m vlp train --config micro --steps 300 --out runs/mine`.
"""


def status_line(view: RunView, session: str) -> str:
    """Markdown: where the run is, said to its owner or to another visitor."""
    if view.status == "idle":
        return "No run yet. Choose a size and the steps, and press **Start training**."
    who = "Your run" if view.owner == session else "A run started by another visitor"
    rate = f" · {view.step * BATCH / view.seconds:.0f} scenes/s" if view.seconds else ""
    where = f"{who} ({view.size}): step {view.step} of {view.steps} · {view.seconds:.0f} s{rate}"
    if view.status == "starting":
        return f"{who} ({view.size}) is starting (a fresh Python process loads torch)…"
    if view.status == "running":
        return where + f" · weights of step {view.snapshot} shown" * bool(view.snapshot)
    ended = {"finished": "finished", "stopped": "stopped", "failed": "failed"}[view.status]
    return f"{where} · **{ended}**" + (f": {view.message}" if view.message else ".")


def loss_table(view: RunView) -> pd.DataFrame:
    """The four objectives' losses by step (the step also reports ITM's accuracy: not a loss)."""
    rows = [row for row in view.losses if row["objective"] in OBJECTIVES]
    return pd.DataFrame(rows, columns=["step", "objective", "loss"])


def compare(model, trained, image, question: str) -> str:
    """Markdown: the demo's model and the trained one, each captioning the image and answering."""
    if trained is None:
        raise BadArgument("No trained model yet: start a run and wait for its first weights "
                          f"(every {SNAPSHOT_EVERY} steps).")
    img = checked_image(image)
    question = check_text(question, "question", MAX_QUESTION_CHARS)
    rows = []
    for name, m in ((f"{model.spec} (the demo's model)", model), ("the model you are training", trained)):
        caption = m.caption(img) if m.capabilities.caption else "–"
        answer = m.answer(img, question) if m.capabilities.answer else "–"
        rows.append(f"| {name} | {caption} | {answer} |")
    return "| model | caption | answer to *" + question + "* |\n| --- | --- | --- |\n" + "\n".join(rows)


def build_train_tab(model, image: gr.Image) -> None:
    pictures = {}  # the attention picture of the last snapshot: its PNG file

    def draw_snapshot(trained) -> None:
        maps = trained.attention(world.render(WATCHED), world.caption(WATCHED))
        pictures["attention"] = png_file(draw_vision(maps, layer=len(maps.vision), head=0))

    run = LiveRun(on_snapshot=draw_snapshot)
    with gr.Tab("Train", id="train"):
        gr.Markdown(EXPLAINED)
        with gr.Row():
            size = gr.Radio(list(SIZES), value="micro", label="Model size", scale=1)
            steps = number_slider(SNAPSHOT_EVERY, MAX_TRAIN_STEPS, value=300, step=SNAPSHOT_EVERY,
                                  label=f"Steps ({BATCH} scenes each)", scale=2, elem_id="train-steps")
            with gr.Column(scale=1, min_width=160):
                start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop", elem_id="train-stop")
        status = gr.Markdown(status_line(RunView(), ""), elem_id="train-status")
        with gr.Row(equal_height=False):
            plot = gr.LinePlot(loss_table(RunView()), x="step", y="loss", color="objective", label="Losses",
                               elem_id="train-losses", scale=3)
            picture = picture_output(gr.Image(label="Class token → patches of test-00004, last layer",
                                              show_label=False, type="filepath", interactive=False,
                                              elem_id="train-attention", scale=2))
        with gr.Row():
            question = gr.Textbox(value="how many shapes are there?", label="A question for both models", scale=3)
            compare_btn = gr.Button("Caption and ask with both (the image on the left)", scale=1,
                                    elem_id="train-compare-btn")
        compared = gr.Markdown(elem_id="train-compare")
        timer = gr.Timer(TICK_S)  # inside the tab: a component between two tabs showed the next tab twice

    def tick(request: gr.Request):
        view = run.view()
        return status_line(view, request.session_hash), loss_table(view), pictures.get("attention")

    @safe
    def on_start(size, steps, request: gr.Request):
        run.start(size, steps, request.session_hash)
        return status_line(run.view(), request.session_hash)

    @safe
    def on_stop(request: gr.Request):
        run.stop(request.session_hash)
        return status_line(run.view(), request.session_hash)

    @safe
    def on_compare(img, question):
        return compare(model, run.model(), img, question)

    timer.tick(tick, None, [status, plot, picture], **PRIVATE)
    one_message(start_btn.click(on_start, [size, steps], [status], **QUEUED_PRIVATE), [status])
    one_message(stop_btn.click(on_stop, None, [status], **QUEUED_PRIVATE), [status])
    one_message(compare_btn.click(on_compare, [image, question], [compared], **QUEUED_PRIVATE), [compared])
