"""The Caption tab: the model's caption of the image, its score, the verdict against the truth
when the demo drew the scene; and the score of any sentence against the image."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image

from vlp import world
from vlp.errors import BadArgument, UnknownWords, Unsupported
from vlp.limits import MAX_BEAMS, MAX_CAPTION_WORDS, check_beams, check_max_length, check_text
from vlp.protocol import CAPTIONER, MatchKind

from demo.inputs import PRIVATE, QUEUED, QUEUED_PRIVATE, checked_image, notice, number_slider, safe
from demo.scenes import KnownScenes


@dataclass
class CaptionResult:
    text: str  # the caption
    score: float | None  # the model's match score of its own caption; None when it cannot score it
    verdict: str  # Markdown: right or wrong against the scene's truth; empty when the truth is unknown


def cannot_caption(model) -> str:
    return (f"{model.spec} cannot write captions. Start the demo with a captioner, e.g. "
            f"`--captioner {CAPTIONER}`.")


def score_label(match: MatchKind | None) -> str:
    """What a match score of this kind measures, in words (`model.capabilities.match`)."""
    if match == "probability":
        return "ITM score: the probability that the text describes the image"
    if match == "cosine":
        return "match score (no ITM head: a squashed cosine similarity, not a probability)"
    return "this model does not score a text against an image"


def caption(model, image, decoding: str = "greedy", beams: int = 3, max_length: int = 30,
            known: KnownScenes | None = None) -> CaptionResult:
    """Caption the image, score the caption, and judge it when the demo knows the scene."""
    if not model.capabilities.caption:
        raise Unsupported(cannot_caption(model))
    img = checked_image(image)
    if decoding not in ("greedy", "beam"):
        raise BadArgument(f"Decoding must be 'greedy' or 'beam', got {decoding!r}.")
    num_beams = 1 if decoding == "greedy" else check_beams(beams)
    text = model.caption(img, num_beams=num_beams, max_length=check_max_length(max_length))
    score = None
    if text.strip() and model.capabilities.match:
        try:
            score = round(float(model.match(img, text)), 4)
        except UnknownWords:  # a composed captioner may use words its matcher never learned
            score = None
    return CaptionResult(text, score, verdict(known, img, text))


def verdict(known: KnownScenes | None, image: Image.Image, text: str) -> str:
    """Markdown: whether `text` names exactly the objects of the scene, when the demo drew it."""
    found = known.find(image) if known else None
    if found is None:
        return ""
    scene, name = found
    truth = world.caption(scene)
    if world.caption_correct(text, scene):
        return f"✓ Right: it names exactly the objects of {name}" + (
            "." if text == truth else f" (the canonical caption is *{truth}*).")
    return f"✗ Not quite: the truth is **{truth}**."


def match(model, image, text: str) -> float:
    """The model's match score of `text` against the image."""
    img = checked_image(image)
    return round(float(model.match(img, check_text(text, "sentence"))), 4)


def build_caption_tab(model, image: gr.Image, known: KnownScenes) -> None:
    can = model.capabilities
    with gr.Tab("Caption", id="caption"):
        if not can.caption:
            notice(cannot_caption(model))
        with gr.Row():
            decoding = gr.Radio(["greedy", "beam"], value="greedy", label="Decoding")
            beams = number_slider(1, MAX_BEAMS, value=3, step=1, label="Beams (beam search only)")
            max_length = number_slider(1, MAX_CAPTION_WORDS, value=30, step=1, label="Maximum length (words)")
        caption_btn = gr.Button("Caption", variant="primary", elem_id="caption-btn", interactive=can.caption)
        caption_out = gr.Textbox(label="Caption", interactive=False, elem_id="caption-out")
        with gr.Row():
            caption_score = gr.Number(label="Score of the caption", info=score_label(can.match), precision=4,
                                      interactive=False, placeholder="–")
            caption_verdict = gr.Markdown()
        gr.Markdown("#### Does a sentence describe the image?")
        with gr.Row():
            sentence = gr.Textbox(label="Any sentence", placeholder="a large red circle", scale=3)
            match_btn = gr.Button("Score it", scale=1, interactive=can.match is not None)
        match_out = gr.Number(label="Score of the sentence", info=score_label(can.match), precision=4,
                              interactive=False, placeholder="–")

    @safe
    def on_caption(img, decoding, beams, max_length):
        result = caption(model, img, decoding, beams, max_length, known)
        return result.text, result.score, result.verdict

    @safe
    def on_match(img, text):
        return match(model, img, text)

    caption_btn.click(on_caption, [image, decoding, beams, max_length], [caption_out, caption_score, caption_verdict],
                      api_name="caption", **QUEUED)
    image.change(lambda: ("", None, ""), None, [caption_out, caption_score, caption_verdict], **PRIVATE)
    match_btn.click(on_match, [image, sentence], [match_out], api_name="match", **QUEUED)
    sentence.submit(on_match, [image, sentence], [match_out], **QUEUED_PRIVATE)
