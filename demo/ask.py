"""The Ask tab: a question about the image, the answer, the model's top first words, and the
verdict when the demo drew the scene (and so knows the true answer)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from vlp import world
from vlp.errors import BadImage, Unsupported
from vlp.limits import MAX_QUESTION_CHARS, check_text
from vlp.protocol import ANSWERER

from demo.batcher import ALONE, BATCHED, Batcher, checked_file
from demo.inputs import (PRIVATE, QUEUED_PRIVATE, WORDS_LIST, checked_image, domain_note, image_path, notice,
                         one_message, safe)
from demo.scenes import KnownScenes, pixel_key

GENERIC_QUESTIONS = [  # for uploads: Shapes World questions, which every model can read
    "how many shapes are there?",
    "what color is the circle?",
    "what shape is the red object?",
    "is there a blue square?",
    "is the red circle left of the blue square?",
]


@dataclass
class AnswerResult:
    answer: str
    scores: dict[str, float]  # the top-5 answers: probability
    verdict: str  # Markdown: right or wrong against the true answer; else the model's notice for an image
    # outside what it knows (`demo.inputs.domain_note`); else empty


def cannot_answer(model) -> str:
    return (f"{model.spec} cannot answer questions. Start the demo with a VQA model, e.g. "
            f"`--model {ANSWERER}`.")


def answer(model, image, question: str, known: KnownScenes | None = None, batcher: Batcher = ALONE) -> AnswerResult:
    """Answer the question about the image; judge the answer when the demo knows the truth. The
    request is checked here, alone; the model answers it in a batch with the others of `batcher`."""
    if not model.capabilities.answer:
        raise Unsupported(cannot_answer(model))
    image = checked_file(image)
    question = check_text(question, "question", MAX_QUESTION_CHARS)
    img, said, top = batcher.call(answers, (image, question), model)
    scores = {word.strip() or "(end of answer)": float(p) for word, p in top}
    return AnswerResult(said, scores, _judged(known, img, question, said) or domain_note(model, img))


def _judged(known: KnownScenes | None, img, question: str, said: str) -> str:
    """Markdown: the answer against the truth when the demo drew the scene; else empty."""
    if known is None or known.find(img) is None:
        return ""
    truth = known.true_answer(img, question)
    if truth is None:
        return ("Not judged: in this scene no one answer is right (more than one object fits the question's "
                "words, or Shapes World's questions never ask it this way).")
    return f"✓ Right: the answer is **{truth}**." if said.strip() == truth else f"✗ The true answer is **{truth}**."


def answers(items: list[tuple], model) -> list[tuple]:
    """(image, answer, its top-5 answers with their probabilities) for each (image, question) of
    a batch, in one `model.answer_scores_many` call. The answer shown is the most likely of the
    five (for vlp's models exactly `answer_many`'s; for BLIP the best beam rather than greedy), so
    the answer and its list always agree."""
    imgs = [checked_image(image) for image, _ in items]
    tops = model.answer_scores_many(imgs, [question for _, question in items], k=5)
    return [(img, top[0][0], top) for img, top in zip(imgs, tops)]


def known_words(model) -> str:
    """Markdown: every word the model reads (`model.vocabulary()`), for the list beside the question
    box; empty for a model that reads any word."""
    words = model.vocabulary()
    if words is None:
        return ""
    listed = [w for w in words if any(c.isalnum() for c in w)]
    marks = " ".join(w for w in words if w not in listed)
    return (f"{model.spec} reads only these {len(listed)} words" + (f" (and the marks {marks})" if marks else "")
            + "; a question with any other word is refused, naming it:\n\n" + " · ".join(f"`{w}`" for w in listed))


def example_questions(image, known: KnownScenes, n: int = 5) -> list[str]:
    """Questions about the scene when the demo drew it, else generic Shapes World questions."""
    try:
        if isinstance(image, str) and not known.might_know(image):
            return list(GENERIC_QUESTIONS)
        img = checked_image(image)
    except BadImage:
        return list(GENERIC_QUESTIONS)
    found = known.find(img)
    if found is None:
        return list(GENERIC_QUESTIONS)
    scene, _ = found
    rng = np.random.default_rng(int(pixel_key(img)[:8], 16))
    asked: dict[str, str] = {}
    types = world.question_types(scene)
    for attempt in range(8 * n):
        q, a, _ = world.sample_question(scene, rng, types[attempt % len(types)])
        asked.setdefault(q, a)
        if len(asked) == n:
            break
    return list(asked)


def build_ask_tab(model, image: gr.Image, known: KnownScenes, batcher: Batcher) -> None:
    with gr.Tab("Ask", id="ask"):
        if not model.capabilities.answer:
            notice(cannot_answer(model))
        with gr.Row():
            question = gr.Textbox(label="Question", placeholder="what color is the circle?", scale=3,
                                  max_length=MAX_QUESTION_CHARS, elem_id="question")
            ask_btn = gr.Button("Ask", variant="primary", scale=1, interactive=model.capabilities.answer)
        questions = gr.Dataset(components=[question], samples=[[q] for q in GENERIC_QUESTIONS],
                               label="Example questions for this image (click one)")
        words = known_words(model)
        if words:
            with gr.Accordion(WORDS_LIST, open=False, elem_id="known-words"):
                gr.Markdown(words)
        with gr.Row():
            with gr.Column():
                answer_out = gr.Textbox(label="Answer", interactive=False, elem_id="answer-out")
                answer_verdict = gr.Markdown(elem_id="answer-verdict")
            answer_probs = gr.Label(num_top_classes=5, label="Top-5 answers")

    @safe
    def on_answer(img, question):
        result = answer(model, img, question, known, batcher)
        return result.answer, result.scores, result.verdict

    def on_image(img):
        samples = [[q] for q in example_questions(image_path(img), known)]
        return gr.Dataset(samples=samples), "", None, ""

    image.change(on_image, [image], [questions, answer_out, answer_probs, answer_verdict], preprocess=False,
                 **QUEUED_PRIVATE)  # the file unopened: the scene note says once what is wrong with it
    questions.click(lambda sample: sample[0], [questions], [question], **PRIVATE)
    answered = [answer_out, answer_probs, answer_verdict]
    one_message(ask_btn.click(on_answer, [image, question], answered, api_name="answer", show_progress_on=[answer_out],
                              **BATCHED), answered)
    one_message(question.submit(on_answer, [image, question], answered, api_visibility="private",
                                show_progress_on=[answer_out], **BATCHED), answered)
