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

from demo.batcher import ALONE, BATCHED, Batcher, checked_file
from demo.inputs import (PRIVATE, QUEUED_PRIVATE, checked_image, domain_note, notice, number_slider, one_message,
                         safe, score_number)
from demo.scenes import KnownScenes


@dataclass
class CaptionResult:
    text: str  # the caption
    score: float | None  # the model's match score of its own caption; None when it cannot score it
    verdict: str  # Markdown: right or wrong against the scene's truth; else the model's notice for an image
    # outside what it knows (`demo.inputs.domain_note`); else empty


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
            known: KnownScenes | None = None, batcher: Batcher = ALONE) -> CaptionResult:
    """Caption the image, score the caption, and judge it when the demo knows the scene. The
    request is checked here, alone; the model runs it in a batch with the others of `batcher`."""
    if not model.capabilities.caption:
        raise Unsupported(cannot_caption(model))
    image = checked_file(image)
    if decoding not in ("greedy", "beam"):
        raise BadArgument(f"Decoding must be 'greedy' or 'beam', got {decoding!r}.")
    num_beams = 1 if decoding == "greedy" else check_beams(beams)
    img, text, score = batcher.call(captions, image, model, num_beams, check_max_length(max_length))
    return CaptionResult(text, score, verdict(known, img, text) or domain_note(model, img))


def captions(images: list, model, num_beams: int, max_length: int) -> list[tuple[Image.Image, str, float | None]]:
    """(image, caption, its score) for each image of a batch: one `model.caption_many` call and one
    `model.match_pairs` call. The score is None for an empty caption or when the model cannot score."""
    imgs = [checked_image(image) for image in images]
    texts = model.caption_many(imgs, num_beams=num_beams, max_length=max_length)
    scored = [i for i, text in enumerate(texts) if text.strip()] if model.capabilities.match else []
    scores: list[float | None] = [None] * len(imgs)
    try:
        found = model.match_pairs([imgs[i] for i in scored], [texts[i] for i in scored]) if scored else []
    except UnknownWords:  # a composed captioner may use words its matcher never learned: one by one
        found = [_score_alone(model, imgs[i], texts[i]) for i in scored]
    for i, score in zip(scored, found):
        scores[i] = None if score is None else round(float(score), 4)
    return list(zip(imgs, texts, scores))


def _score_alone(model, image: Image.Image, text: str) -> float | None:
    try:
        return model.match(image, text)
    except UnknownWords:
        return None


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


def match(model, image, text: str, batcher: Batcher = ALONE) -> float:
    """The model's match score of `text` against the image, in a batch with the others of `batcher`."""
    image = checked_file(image)
    return batcher.call(match_scores, (image, check_text(text, "sentence")), model)


def match_scores(pairs: list[tuple], model) -> list[float]:
    """The match score of each (image, text) of a batch: one `model.match_pairs` call."""
    scores = model.match_pairs([checked_image(image) for image, _ in pairs], [text for _, text in pairs])
    return [round(float(score), 4) for score in scores]


def build_caption_tab(model, image: gr.Image, known: KnownScenes, batcher: Batcher) -> None:
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
            caption_score = score_number(label="Score of the caption", info=score_label(can.match), precision=4,
                                         elem_id="caption-score")
            caption_verdict = gr.Markdown(elem_id="caption-verdict")
        gr.Markdown("#### Does a sentence describe the image?")
        with gr.Row():
            sentence = gr.Textbox(label="Any sentence", placeholder="a large red circle", scale=3)
            match_btn = gr.Button("Score it", scale=1, interactive=can.match is not None)
        with gr.Row():
            match_out = score_number(label="Score of the sentence", info=score_label(can.match), precision=4)
            match_note = gr.Markdown(elem_id="match-note")

    @safe
    def on_caption(img, decoding, beams, max_length):
        result = caption(model, img, decoding, beams, max_length, known, batcher)
        return result.text, result.score, result.verdict

    @safe
    def on_match(img, text):
        return match(model, img, text, batcher)

    @safe
    def on_match_note(img):
        return domain_note(model, checked_image(img))

    captioned = [caption_out, caption_score, caption_verdict]
    one_message(caption_btn.click(on_caption, [image, decoding, beams, max_length], captioned, api_name="caption",
                                  show_progress_on=[caption_out], **BATCHED), captioned)
    image.change(lambda: ("", None, "", None, ""), None, [*captioned, match_out, match_note], **PRIVATE)
    for matched in (match_btn.click(on_match, [image, sentence], [match_out], api_name="match", **BATCHED),
                    sentence.submit(on_match, [image, sentence], [match_out], api_visibility="private", **BATCHED)):
        one_message(matched, [match_out, match_note])
        matched.success(on_match_note, [image], [match_note], **QUEUED_PRIVATE)
