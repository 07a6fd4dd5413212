"""The Gradio Blocks of the demo: components and wiring only; every handler is in handlers.py.

    demo = build_demo(vlp.load(), "world:2000")
    launch(demo, server_port=7860)

Each event that scripts may call has an `api_name` (`/caption`, `/match`, `/random_scene`,
`/answer`, `/search`, `/search_image`, `/add_images`, `/attention`, `/worked_example`);
the rest (redraws, small UI updates) are private. A ValueError from a handler (vlp's one
sentence about bad input) reaches the user as a `gr.Error`, and the server keeps serving.
"""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from demo import handlers as h

MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any decoding
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
LAUNCH = dict(max_file_size=MAX_FILE_SIZE, allowed_paths=[str(h.EXAMPLES)], show_error=False, share=False,
              theme=THEME, css=CSS, footer_links=["api"])
PRIVATE = dict(api_visibility="private", queue=False)  # small UI updates: off the API, off the queue


def launch(demo: gr.Blocks, **kwargs):
    """Queue and launch with the demo's limits (file size, concurrency, served paths)."""
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo.launch(**{**LAUNCH, **kwargs})


def _safe(fn):
    """Turn the ValueError of a handler into one gr.Error sentence for the user."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as err:
            raise gr.Error(str(err), title="Cannot do that") from None
    return wrapper


def image_input(**kwargs) -> gr.Image:
    """`gr.Image(type="filepath")` whose refusal of a bad upload is vlp's sentence, not a stack trace.

    Gradio opens an upload with PIL before any handler runs; when that fails (a text file, a
    truncated PNG, an image of hundreds of megapixels), `vlp.images.load_image` says why in one
    sentence. (A wrapper on this one component, not a subclass: gradio writes a .pyi stub beside
    the source file of every component class it sees.)
    """
    image = gr.Image(type="filepath", **kwargs)
    gradio_preprocess = image.preprocess

    def preprocess(payload):
        try:
            return gradio_preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            path = getattr(payload, "path", None)
            name = getattr(payload, "orig_name", None) or "the file"
            try:
                h._image(path)
            except ValueError as err:
                raise gr.Error(str(err).replace(f"'{Path(path).name}'", f"'{name}'"), title="Not an image") from None
            raise gr.Error(f"'{name}' could not be read as an image.", title="Not an image") from None

    image.preprocess = preprocess
    return image


def _vision_shape(model) -> tuple[int, int]:
    """(layers, heads) of the image encoder, for the sliders' ranges; (12, 12) when unknown."""
    if hasattr(model, "main"):  # vlp.compose: the main model shows the attention
        return _vision_shape(model.main)
    for path in (("net", "config", "vision"), ("net", "vision", "config")):
        obj = model
        for name in path:
            obj = getattr(obj, name, None)
        if obj is not None and hasattr(obj, "layers"):
            return int(obj.layers), int(obj.heads)
    vc = getattr(getattr(getattr(model, "model", None), "config", None), "vision_config", None)
    if vc is not None:
        return int(vc.num_hidden_layers), int(vc.num_attention_heads)
    return 12, 12


def _picture(label: str, elem_id: str, visible: bool = True, height: int | None = None) -> gr.Image:
    """An output image for a drawn figure (its title is in the picture)."""
    return gr.Image(label=label, show_label=False, type="pil", format="png", interactive=False, elem_id=elem_id,
                    buttons=["download", "fullscreen"], visible=visible, height=height)


def _notice(cannot: dict[str, str], tab: str):
    if tab in cannot:
        gr.Markdown(f"⚠ {cannot[tab]}", elem_classes="notice")


def build_demo(model, gallery_spec: str = h.DEFAULT_GALLERY, cache_dir=None) -> gr.Blocks:
    """The demo's Blocks for `model`. The search gallery (`world:N` or a folder) is built on
    first use; `demo.gallery.start()` builds it in the background instead."""
    known = h.KnownScenes()
    examples = h.load_examples(known)
    gallery = h.Gallery(model, gallery_spec, cache_dir)
    cannot = h.cannot(model)
    layers, heads = _vision_shape(model)
    learn_initial = h.worked(h.CLASSIC["Q"], h.CLASSIC["K"], h.CLASSIC["V"])

    # ------------------------------------------------------------------ bound handlers
    @_safe
    def random_scene(split):
        return h.random_scene(known, split)

    def image_changed(image):
        questions = h.example_questions(image, known)
        return h.scene_note(known, image), "", None, "", gr.Dataset(samples=[[q] for q in questions]), "", None, ""

    @_safe
    def caption(image, decoding, beams, max_length):
        return h.caption(model, image, decoding, beams, max_length, known)

    @_safe
    def match(image, text):
        return h.match(model, image, text)

    @_safe
    def answer(image, question):
        return h.answer(model, image, question, known)

    @_safe
    def search(text, image, k, rerank, own):
        return h.search(model, gallery, own, text, image, k, rerank)

    @_safe
    def search_image(image, k, own):
        return h.search(model, gallery, own, "", image, k, False)

    @_safe
    def add_images(files, own, progress=gr.Progress()):
        own, text = h.add_images(model, own, files, progress)
        return own, text, h.index_summary(gallery, own)

    def summary(own):
        return h.index_summary(gallery, own)

    @_safe
    def attention(image, text, layer, head, all_heads):
        maps = h.compute_attention(model, image, text)
        vision, grid, rollout, cross, text_matrix = h.draw_attention(maps, layer, head, all_heads, 1)
        choices = h.word_choices(maps)
        words = gr.Radio(choices=choices, value=choices[0][1] if choices else None)
        return vision, grid, rollout, cross, text_matrix, h.attention_caption(maps), words, maps

    def sliders(maps):
        if maps is None:
            return gr.Slider(), gr.Slider()
        n_layers, n_heads = len(maps.vision), maps.vision[0].shape[0]
        return gr.Slider(maximum=n_layers), gr.Slider(maximum=n_heads)

    def need(maps):
        if maps is None:
            raise ValueError("Press 'Show attention' first.")
        return maps

    @_safe
    def redraw_vision(maps, layer, head):
        return h.draw_vision(need(maps), layer, head)

    @_safe
    def redraw_heads(maps, layer, all_heads):
        if not all_heads:
            return gr.Image(None, visible=False)
        return gr.Image(h.draw_heads(need(maps), layer), visible=True)

    def heads_of_layer(maps, layer, all_heads):
        if not all_heads or maps is None or not h.heads_depend_on_layer(maps):
            return gr.skip()  # no grid shown, or it holds every layer already
        return h.draw_heads(maps, layer)

    @_safe
    def redraw_cross(maps, word):
        return h.draw_cross(need(maps), word)

    worked = _safe(h.worked)

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="vlp — vision-language pretraining, in the browser") as demo:
        gr.Markdown(
            "# vlp — caption, ask, search, and see where the model looks\n"
            + h.model_line(model),
            elem_id="header",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                image = image_input(label="Image", format="png", height=300, sources=["upload", "clipboard"],
                                    elem_id="image")
                with gr.Row():
                    random_btn = gr.Button("New random scene", scale=3, elem_id="random-scene")
                    split = gr.Radio(list(h.SCENE_SPLITS), value="test", show_label=False, scale=2, min_width=120,
                                     container=False, info="novel: pairs unseen in training")
                note = gr.Markdown(elem_id="scene-note")
                gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Example scenes (test split)",
                            examples_per_page=6, elem_id="examples")
            with gr.Column(scale=2, min_width=480):
                with gr.Tabs():
                    # ------------------------------------------------------ caption
                    with gr.Tab("Caption", id="caption"):
                        _notice(cannot, "caption")
                        with gr.Row():
                            decoding = gr.Radio(["greedy", "beam"], value="greedy", label="Decoding")
                            beams = gr.Slider(1, 8, value=3, step=1, label="Beams (beam search only)")
                            max_length = gr.Slider(1, 40, value=30, step=1, label="Maximum length (words)")
                        caption_btn = gr.Button("Caption", variant="primary", elem_id="caption-btn",
                                                interactive="caption" not in cannot)
                        caption_out = gr.Textbox(label="Caption", interactive=False, elem_id="caption-out")
                        with gr.Row():
                            caption_score = gr.Number(label="Score of the caption", info=h.score_label(model),
                                                      precision=4, interactive=False, placeholder="–")
                            caption_verdict = gr.Markdown()
                        gr.Markdown("#### Does a sentence describe the image?")
                        with gr.Row():
                            sentence = gr.Textbox(label="Any sentence", placeholder="a large red circle", scale=3)
                            match_btn = gr.Button("Score it", scale=1)
                        match_out = gr.Number(label="Score of the sentence", info=h.score_label(model), precision=4,
                                              interactive=False, placeholder="–")
                    # ------------------------------------------------------ ask
                    with gr.Tab("Ask", id="ask"):
                        _notice(cannot, "ask")
                        with gr.Row():
                            question = gr.Textbox(label="Question", placeholder="what color is the circle?", scale=3,
                                                  max_length=h.MAX_QUESTION_CHARS)
                            ask_btn = gr.Button("Ask", variant="primary", scale=1, interactive="ask" not in cannot)
                        questions = gr.Dataset(components=[question], samples=[[q] for q in h.GENERIC_QUESTIONS],
                                               label="Example questions for this image (click one)")
                        with gr.Row():
                            with gr.Column():
                                answer_out = gr.Textbox(label="Answer", interactive=False, elem_id="answer-out")
                                answer_verdict = gr.Markdown()
                            answer_probs = gr.Label(num_top_classes=5, label="Top-5 first answer words")
                    # ------------------------------------------------------ search
                    with gr.Tab("Search", id="search"):
                        _notice(cannot, "search")
                        index_md = gr.Markdown(gallery.describe())
                        with gr.Row():
                            query = gr.Textbox(label="Search by a sentence",
                                               placeholder="a large red circle to the left of a small blue square",
                                               scale=3)
                            search_btn = gr.Button("Search", variant="primary", scale=1)
                        with gr.Row():
                            k = gr.Slider(1, h.MAX_K, value=8, step=1, label="Results")
                            has_itm = getattr(model, "has_itm", True)
                            rerank = gr.Checkbox(value=False, label="Re-rank with the ITM head", interactive=has_itm,
                                                 info="cosine finds candidates; ITM reads image and text together"
                                                 if has_itm else "this model has no ITM head")
                            image_search_btn = gr.Button("Search with the image on the left")
                        results_md = gr.Markdown()
                        results = gr.Gallery(label="Results", columns=4, elem_id="results", height="auto", object_fit="contain", format="png",
                                             elem_classes="pixelated", allow_preview=True)
                        with gr.Accordion("Add your own images (only you see them)", open=False):
                            files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                            label="Images")
                            add_btn = gr.Button("Add to my search")
                            add_md = gr.Markdown()
                        own = gr.State(None)
                    # ------------------------------------------------------ attention
                    with gr.Tab("Attention", id="attention"):
                        with gr.Row():
                            att_text = gr.Textbox(label="Text to explain (empty: the caption the model writes)",
                                                  scale=3)
                            att_btn = gr.Button("Show attention", variant="primary", scale=1, elem_id="attention-btn")
                        att_caption = gr.Markdown()
                        with gr.Row():
                            layer = gr.Slider(1, layers, value=layers, step=1, label="Layer")
                            head = gr.Slider(0, heads, value=0, step=1, label="Head (0 = mean of the heads)")
                            all_heads = gr.Checkbox(value=False, label="Every head, as a grid")
                        with gr.Row():
                            vision_img = _picture("Vision self-attention", "vision-map")
                            rollout_img = _picture("Attention rollout", "rollout-map")
                        grid_img = _picture("Every head", "heads-map", visible=False)
                        with gr.Row(equal_height=False):
                            with gr.Column(scale=1, min_width=160):
                                word = gr.Radio(choices=[], label="A word of the caption: the cross-attention behind it")
                            with gr.Column(scale=2):
                                cross_img = _picture("Cross-attention behind the word", "cross-map")
                        text_img = _picture("Text self-attention", "text-map", height=520)
                        maps = gr.State(None)
                    # ------------------------------------------------------ learn
                    with gr.Tab("Learn", id="learn"):
                        gr.Markdown(
                            "### Attention by hand\n"
                            "$$\\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d_k}}\\right)V$$\n"
                            "Edit Q, K and V (one row per token, one column per feature; Q and K share their "
                            "width d_k) and press **Work it out**. The default is the three-token example with "
                            "d_k = 1: Q = [1, 2, 3]ᵀ, K = [4, 5, 6]ᵀ, V = [7, 8, 9]ᵀ."
                        )
                        with gr.Row():
                            q_df = gr.Dataframe(value=h.CLASSIC["Q"], headers=["d1"], label="Q (T × d_k)",
                                                type="array", datatype="number", interactive=True, elem_id="learn-q")
                            k_df = gr.Dataframe(value=h.CLASSIC["K"], headers=["d1"], label="K (S × d_k)",
                                                type="array", datatype="number", interactive=True, elem_id="learn-k")
                            v_df = gr.Dataframe(value=h.CLASSIC["V"], headers=["d1"], label="V (S × d_v)",
                                                type="array", datatype="number", interactive=True, elem_id="learn-v")
                        with gr.Row():
                            learn_btn = gr.Button("Work it out", variant="primary")
                            reset_btn = gr.Button("Back to the three-token example")
                        steps = []
                        for i in range(4):
                            with gr.Row(equal_height=False):
                                steps.append(gr.Markdown(learn_initial[2 * i]))
                                steps.append(gr.Dataframe(value=learn_initial[2 * i + 1], interactive=False,
                                                          label=["QKᵀ", "QKᵀ / √d_k", "softmax weights A",
                                                                 "output AV"][i], elem_classes="step-table"))
                        mistakes_md = gr.Markdown(learn_initial[8])
                    # ------------------------------------------------------ about
                    with gr.Tab("About", id="about"):
                        gr.Markdown(h.card_markdown(model))

        # ------------------------------------------------------------------ wiring
        random_btn.click(random_scene, [split], [image, note], api_name="random_scene")
        image.change(image_changed, [image],
                     [note, caption_out, caption_score, caption_verdict, questions, answer_out, answer_probs,
                      answer_verdict], **PRIVATE)

        caption_btn.click(caption, [image, decoding, beams, max_length], [caption_out, caption_score, caption_verdict],
                          api_name="caption")
        match_btn.click(match, [image, sentence], [match_out], api_name="match")
        sentence.submit(match, [image, sentence], [match_out], api_visibility="private")

        questions.click(lambda sample: sample[0], [questions], [question], **PRIVATE)
        ask_btn.click(answer, [image, question], [answer_out, answer_probs, answer_verdict], api_name="answer")
        question.submit(answer, [image, question], [answer_out, answer_probs, answer_verdict],
                        api_visibility="private")

        search_btn.click(search, [query, image, k, rerank, own], [results, results_md], api_name="search").then(
            summary, [own], [index_md], **PRIVATE)
        query.submit(search, [query, image, k, rerank, own], [results, results_md], api_visibility="private")
        image_search_btn.click(search_image, [image, k, own], [results, results_md], api_name="search_image")
        add_btn.click(add_images, [files, own], [own, add_md, index_md], api_name="add_images")
        demo.load(summary, [own], [index_md], **PRIVATE)

        att_btn.click(attention, [image, att_text, layer, head, all_heads],
                      [vision_img, grid_img, rollout_img, cross_img, text_img, att_caption, word, maps],
                      api_name="attention").then(sliders, [maps], [layer, head], **PRIVATE).then(
            lambda on: gr.Image(visible=bool(on)), [all_heads], [grid_img], **PRIVATE)
        for control in (layer, head):
            control.release(redraw_vision, [maps, layer, head], [vision_img], api_visibility="private")
        layer.release(heads_of_layer, [maps, layer, all_heads], [grid_img], api_visibility="private")
        all_heads.input(redraw_heads, [maps, layer, all_heads], [grid_img], api_visibility="private")
        word.input(redraw_cross, [maps, word], [cross_img], api_visibility="private")

        learn_btn.click(worked, [q_df, k_df, v_df], [*steps, mistakes_md], api_name="worked_example")
        reset_btn.click(lambda: (h.CLASSIC["Q"], h.CLASSIC["K"], h.CLASSIC["V"], *learn_initial), None,
                        [q_df, k_df, v_df, *steps, mistakes_md], **PRIVATE)

    demo.gallery = gallery  # app.py starts its build in the background; tests read it
    demo.known_scenes = known
    return demo


__all__ = ["build_demo", "launch", "LAUNCH", "MAX_FILE_SIZE", "CONCURRENCY"]
