"""The Search tab: the shared gallery (and a visitor's own images, kept in their session only)
searched by a sentence or by the image on the left, optionally re-ranked by a trained
image–text matching head."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from vlp import world
from vlp.errors import BadArgument, BadImage, Unsupported
from vlp.images import image_size, load_image
from vlp.index import Hit, SearchIndex
from vlp.limits import MAX_ADD_FILES, MAX_K, MAX_OWN_IMAGES, MAX_PIXELS, check_k, check_text
from vlp.protocol import EMBEDDER

from demo import draw
from demo.gallery import Gallery
from demo.inputs import (PRIVATE, QUEUED, QUEUED_PRIVATE, checked_image, domain_note, notice, number_slider,
                         one_message, safe, without_path)
from demo.pictures import picture_output

ADD_BATCH = 4  # most files decoded and embedded at a time (fewer when they are large: `add_batches`)


@dataclass
class SearchResult:
    pictures: list[tuple[Image.Image, str]]  # each hit's picture and its label, best first
    summary: str  # Markdown: how many, how ordered, how fast; nearest captions for an image query


def cannot_search(model) -> str:
    return (f"{model.spec} does not embed images and texts into one space, so it cannot search. "
            f"Start the demo with e.g. `--model {EMBEDDER}`.")


def _require_search(model) -> None:
    if not model.capabilities.embed:
        raise Unsupported(cannot_search(model))


def hit_picture(hit: Hit) -> Image.Image | None:
    """What to show for a hit: its scene drawn again, or its file; None when the file is gone."""
    scene = world.scene_image(hit.meta)
    if scene is not None:
        return draw.upscale(scene, 192)
    if hit.path is None:
        return None
    try:
        image = load_image(hit.path)
    except BadImage:  # deleted or changed since it was indexed
        return None
    image.thumbnail((256, 256))
    return image


SCORES = {  # what a tile's score is, in words, under the results
    False: "**cos**: the cosine similarity of the query's and the image's embeddings, from −1 to 1 (nearer is higher; "
           "it orders the results but is not a probability)",
    True: "**ITM**: the matching head's probability that the sentence describes the image, from 0 to 1",
}


def unseen_pairs(text: str) -> list[str]:
    """The colour–shape pairs that `text` names and training never showed (the novel split's
    `world.HELD_OUT`), e.g. ["purple triangle"] for "a small purple triangles left of …"."""
    said = world.words(text.lower())
    named = {(c, s.removesuffix("s")) for c, s in zip(said, said[1:])}
    return [f"{c} {s}" for c, s in sorted(world.HELD_OUT) if (c, s) in named]


def hit_label(hit: Hit, own: bool, reranked: bool) -> str:
    name = hit.caption or (Path(hit.path).name if hit.path else f"item {hit.id}")
    what = "ITM" if reranked else "cos"
    return f"{hit.rank}. {what} {hit.score:.3f} · {'yours: ' if own else ''}{name}"


def search(model, gallery: Gallery, own: SearchIndex | None, text: str = "", image=None, k: int = 8,
           rerank: bool = False) -> SearchResult:
    """Search the gallery (and the session's own images, `own`) by a sentence, or by an image
    when the sentence is empty."""
    _require_search(model)
    k = check_k(k)
    by_text = isinstance(text, str) and bool(text.strip())
    if not by_text and image is None:
        raise BadArgument("Type a sentence to search for, or give an image to search with.")
    if not isinstance(rerank, bool):
        raise BadArgument(f"Re-ranking is on or off (true or false), got {rerank!r}.")
    if by_text and rerank and not model.capabilities.itm:
        raise Unsupported(f"{model.spec} has no image–text matching head to re-rank with; turn re-ranking off.")
    index = gallery.get()
    start = time.perf_counter()
    if by_text:
        query = check_text(text, "search text")
        found = [(hit, False) for hit in index.search_text(query, k, rerank=rerank)]
        if own is not None and len(own):
            found += [(hit, True) for hit in own.search_text(query, k, rerank=rerank)]
    else:
        img = checked_image(image)
        rerank = False
        found = [(hit, False) for hit in index.search_image(img, k)]
        if own is not None and len(own):
            found += [(hit, True) for hit in own.search_image(img, k)]
    found.sort(key=lambda pair: -pair[0].score)
    pictures = []
    for rank, (hit, mine) in enumerate(found[:k], 1):
        hit.rank = rank
        picture = hit_picture(hit)
        if picture is not None:
            pictures.append((picture, hit_label(hit, mine, rerank)))
    ms = (time.perf_counter() - start) * 1000
    summary = (f"{len(pictures)} results for **{query}**" if by_text else f"{len(pictures)} images nearest to the image") + (
        f" in {ms:.0f} ms · " + ("re-ranked by the ITM head" if rerank else "ordered by cosine similarity of the embeddings"))
    summary += "  \n" + SCORES[rerank]
    if by_text and (unseen := unseen_pairs(query)):
        summary += (f"  \n⚠ Training never showed a {' or a '.join(unseen)}: the four colour–shape pairs held out "
                    "for the novel split (a test of combinations the model knows only apart) are in no training scene"
                    + (", nor in the gallery's test scenes." if gallery.folder is None else "."))
    if not by_text and len(index.texts):
        captions = index.search_texts_for_image(img, k=3)
        summary += "  \nNearest captions in the gallery: " + "; ".join(f"*{h.caption}* ({h.score:.3f})" for h in captions)
    if not by_text and (note := domain_note(model, img)):
        summary += "  \n" + note
    return SearchResult(pictures, summary)


def add_batches(paths: list[str]) -> list[list[str]]:
    """`paths` in batches of at most `ADD_BATCH` files and, together, `MAX_PIXELS` (read from the
    headers), so that memory holds about one large image's pixels at a time however many are added."""
    batches, pixels = [], 0
    for path in paths:
        try:
            width, height = image_size(path)
        except BadImage:  # the index says why when it skips it
            width = height = 0
        if not batches or len(batches[-1]) == ADD_BATCH or pixels + width * height > MAX_PIXELS:
            batches.append([])
            pixels = 0
        batches[-1].append(path)
        pixels += width * height
    return batches


@dataclass
class AddResult:
    own: SearchIndex  # the session's own index, with the new images
    summary: str  # Markdown: how many were added, and what was skipped and why


def add_images(model, own: SearchIndex | None, files,
               progress: Callable[[float, str], object] | None = None) -> AddResult:
    """Add image files to the session's own index (created on first use) in small batches
    (`add_batches`), calling `progress(fraction, words)` after each. At most `MAX_ADD_FILES` files a call and
    `MAX_OWN_IMAGES` in the session's index, both checked before any file is read."""
    _require_search(model)
    paths = [str(f) for f in files or []]
    if not paths:
        raise BadArgument("Choose one or more image files to add.")
    if len(paths) > MAX_ADD_FILES:
        raise BadArgument(f"Add at most {MAX_ADD_FILES} images at a time, not {len(paths)}.")
    held = len(own) if own is not None else 0
    if held + len(paths) > MAX_OWN_IMAGES:
        raise BadArgument(f"Your search holds at most {MAX_OWN_IMAGES} images; it has {held}, "
                          f"so add at most {MAX_OWN_IMAGES - held} more.")
    if own is None:
        own = SearchIndex(model)
    added, skipped, done = 0, [], 0
    for batch in add_batches(paths):
        report = own.add(batch, batch_size=ADD_BATCH, progress=False)
        added += report.added
        skipped += [(Path(where).name, without_path(why, where)) for where, why in report.skipped]
        done += len(batch)
        if progress is not None:
            progress(done / len(paths), f"indexed {done} of {len(paths)}")
    text = f"Added {added} of your image{'s' * (added != 1)}; you have {len(own)} in all (only you see them)."
    if skipped:
        text += "  \nSkipped: " + "; ".join(f"{name}: {why}" for name, why in skipped)
    return AddResult(own, text)


def index_summary(gallery: Gallery, own: SearchIndex | None) -> str:
    text = "**The gallery:** " + gallery.describe()
    if own is not None and len(own):
        text += f"  \n**Yours:** {len(own)} image{'s' * (len(own) != 1)} (this session only)"
    return text


def build_search_tab(model, image: gr.Image, gallery: Gallery, page: gr.Blocks) -> None:
    """The tab; `page` is the whole demo, whose load event shows the gallery's current state."""
    itm = model.capabilities.itm
    with gr.Tab("Search", id="search"):
        if not model.capabilities.embed:
            notice(cannot_search(model))
        index_md = gr.Markdown(gallery.describe())
        with gr.Row():
            query = gr.Textbox(label="Search by a sentence", scale=3,
                               placeholder="a large red circle to the left of a small blue square")
            search_btn = gr.Button("Search", variant="primary", scale=1)
        with gr.Row():
            k = number_slider(1, MAX_K, value=8, step=1, label="Results")
            rerank = gr.Checkbox(value=False, label="Re-rank with the ITM head", interactive=itm,
                                 info="cosine finds candidates; ITM reads image and text together"
                                 if itm else "this model has no ITM head")
            image_search_btn = gr.Button("Search with the image on the left")
        results_md = gr.Markdown(elem_id="results-summary")
        results = picture_output(gr.Gallery(label="Results", columns=4, elem_id="results", height="auto",
                                            object_fit="contain", format="png", elem_classes="pixelated",
                                            allow_preview=True))
        with gr.Accordion("Add your own images (only you see them)", open=False):
            files = gr.File(file_count="multiple", file_types=["image"], type="filepath", label="Images",
                            elem_id="add-files")
            add_btn = gr.Button("Add to my search")
            add_md = gr.Markdown()
        own = gr.State(None)

    @safe
    def on_search(text, img, k, rerank, own):
        result = search(model, gallery, own, text, img, k, rerank)
        return result.pictures, result.summary

    @safe
    def on_search_image(img, k, own):
        result = search(model, gallery, own, "", img, k, False)
        return result.pictures, result.summary

    @safe
    def on_add(files, own, progress=gr.Progress()):
        result = add_images(model, own, files, progress)
        return result.own, result.summary, index_summary(gallery, result.own)

    def summary(own):
        return index_summary(gallery, own)

    found = [results, results_md]
    searched = search_btn.click(on_search, [query, image, k, rerank, own], found, api_name="search",
                                show_progress_on=[results], **QUEUED)
    searched.then(summary, [own], [index_md], **PRIVATE)
    one_message(searched, found)
    one_message(query.submit(on_search, [query, image, k, rerank, own], found, show_progress_on=[results],
                             **QUEUED_PRIVATE), found)
    one_message(image_search_btn.click(on_search_image, [image, k, own], found, api_name="search_image",
                                       show_progress_on=[results], **QUEUED), found)
    one_message(add_btn.click(on_add, [files, own], [own, add_md, index_md], api_name="add_images",
                              show_progress_on=[add_md], **QUEUED), [add_md])  # the images already added stay
    page.load(summary, [own], [index_md], **PRIVATE)
