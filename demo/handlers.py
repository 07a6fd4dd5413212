"""The demo's handlers: plain functions from inputs to outputs, testable without the UI.

Each takes what it needs (the model, the search gallery, the registry of known scenes) as
arguments, and raises ValueError with one sentence when the input is bad; `demo/ui.py` binds
the model, turns ValueError into `gr.Error`, and wires the functions to components. Images
arrive as whatever `vlp.images.load_image` reads (a file path from the UI), and it is the one
place that decides whether an upload is an image.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from vlp import world
from vlp.attention import AttentionMaps, worked_example
from vlp.images import load_image

from demo import draw

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
DEFAULT_GALLERY = "world:2000"
MAX_QUESTION_CHARS = 200  # longer questions are refused before they reach the model
MAX_TEXT_CHARS = 300  # the same for sentences to match or search with
MAX_K = 48  # most search results shown
MAX_ADD = 500  # most files added in one go
SCENE_SPLITS = ("test", "novel")  # what "new random scene" draws from; never train
RANDOM_INDICES = 1_000_000  # random scenes are drawn from this many of a split
REAL_WEIGHTS = "--model openclip:ViT-B-32:laion2b_s34b_b79k --captioner blip:Salesforce/blip-image-captioning-base"
GENERIC_QUESTIONS = [  # for uploads: Shapes World questions, which every model can read
    "how many shapes are there?",
    "what color is the circle?",
    "what shape is the red object?",
    "is there a blue square?",
    "is the red circle left of the blue square?",
]
NO_IMAGE = "Give an image first: upload one, pick an example or draw a random scene."


# ----------------------------------------------------------------------------- small helpers


def _image(image) -> Image.Image:
    """The input as an RGB image, or ValueError (one sentence) from vlp.images."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise ValueError(NO_IMAGE)
    try:
        return load_image(image)
    except ValueError as err:
        if isinstance(image, (str, Path)):  # name the file, not the server's temporary path
            raise ValueError(str(err).replace(str(image), f"'{Path(image).name}'")) from None
        raise


def _text(text, what: str, limit: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"The {what} is empty; type a few words.")
    text = " ".join(text.split())
    if len(text) > limit:
        raise ValueError(f"The {what} is too long: {len(text)} characters, at most {limit}.")
    return text


def _require(model, able: str, sentence: str) -> None:
    if not getattr(model, able, True):
        raise ValueError(sentence)


def cannot(model) -> dict[str, str]:
    """What each tab needs that `model` lacks: {tab: one sentence}; tabs it serves are absent."""
    name = model.spec
    out = {}
    if not getattr(model, "can_caption", True):
        out["caption"] = (f"{name} cannot write captions. Start the demo with a captioner, e.g. "
                          "`--captioner blip:Salesforce/blip-image-captioning-base`.")
    if not getattr(model, "can_answer", True):
        out["ask"] = (f"{name} cannot answer questions. Start the demo with a VQA model, e.g. "
                      "`--model blip:Salesforce/blip-vqa-base`.")
    if not getattr(model, "embed_dim", 0):
        out["search"] = (f"{name} does not embed images and texts into one space, so it cannot search. "
                         "Start the demo with e.g. `--model openclip:ViT-B-32:laion2b_s34b_b79k`.")
    return out


def score_label(model) -> str:
    """What `model.match` measures, in words."""
    if getattr(model, "has_itm", True):
        return "ITM score: the probability that the text describes the image"
    return "match score (no ITM head: a squashed cosine similarity, not a probability)"


def pixel_key(image: Image.Image) -> str:
    """A hash of the pixels: the same picture gives the same key however it was saved."""
    a = np.asarray(image.convert("RGB"))
    return hashlib.blake2b(a.tobytes() + str(a.shape).encode(), digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- known scenes


class KnownScenes:
    """Scenes the demo drew (examples, random scenes), found again by their pixels, so that an
    image coming back from the browser can be checked against its scene's truth."""

    def __init__(self, limit: int = 2000):
        self.limit = limit
        self._scenes: OrderedDict[str, tuple[world.Scene, str]] = OrderedDict()
        self._answers: dict[str, dict[str, str]] = {}  # key -> {question: true answer}
        self._lock = threading.Lock()

    def add(self, scene: world.Scene, image: Image.Image, name: str) -> None:
        key = pixel_key(image)
        with self._lock:
            self._scenes[key] = (scene, name)
            self._scenes.move_to_end(key)
            while len(self._scenes) > self.limit:
                old, _ = self._scenes.popitem(last=False)
                self._answers.pop(old, None)

    def find(self, image: Image.Image) -> tuple[world.Scene, str] | None:
        with self._lock:
            return self._scenes.get(pixel_key(image))

    def remember_answers(self, image: Image.Image, answers: dict[str, str]) -> None:
        with self._lock:
            self._answers.setdefault(pixel_key(image), {}).update(answers)

    def true_answer(self, image: Image.Image, question: str) -> str | None:
        with self._lock:
            return self._answers.get(pixel_key(image), {}).get(question)


def example_files() -> list[Path]:
    """The example scene images in assets/examples, sorted."""
    return sorted(EXAMPLES.glob("*.png"))


def load_examples(known: KnownScenes) -> list[str]:
    """Register the example scenes (PNG + scene JSON) and return the image paths."""
    paths = []
    for png in example_files():
        meta = png.with_suffix(".json")
        if meta.is_file():
            known.add(world.Scene.load_json(meta), load_image(png), f"example {png.stem}")
        paths.append(str(png))
    return paths


def random_scene(known: KnownScenes, split: str = "test", index: int | None = None) -> tuple[Image.Image, str]:
    """Draw a scene of `split` (a random one unless `index`), remember it; (image, note)."""
    if split not in SCENE_SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SCENE_SPLITS)}.")
    if index is None:
        index = int(np.random.default_rng().integers(RANDOM_INDICES))
    scene = world.sample_scene(split, int(index))
    image = world.render(scene)
    known.add(scene, image, f"{split} scene #{index}")
    return image, scene_note(known, image)


def scene_note(known: KnownScenes, image) -> str:
    """Markdown saying what the scene is, when the demo drew it; empty otherwise."""
    if image is None:
        return ""
    try:
        found = known.find(_image(image))
    except ValueError:
        return ""
    if found is None:
        return "An uploaded image: the demo does not know its truth."
    scene, name = found
    return f"Shapes World, {name}. True caption: **{world.caption(scene)}**"


# ----------------------------------------------------------------------------- caption


def caption(model, image, decoding: str = "greedy", beams: int = 3, max_length: int = 30,
            known: KnownScenes | None = None) -> tuple[str, float | None, str]:
    """Caption the image: (caption, match score of the caption, verdict against the truth)."""
    _require(model, "can_caption", cannot(model).get("caption", ""))
    img = _image(image)
    if decoding not in ("greedy", "beam"):
        raise ValueError(f"Decoding must be 'greedy' or 'beam', got {decoding!r}.")
    num_beams = 1 if decoding == "greedy" else int(beams)
    if not 1 <= num_beams <= 16:
        raise ValueError(f"The number of beams must be between 1 and 16, got {num_beams}.")
    max_length = int(max_length)
    if not 1 <= max_length <= 64:
        raise ValueError(f"The maximum length must be between 1 and 64 words, got {max_length}.")
    text = model.caption(img, num_beams=num_beams, max_length=max_length)
    score = None
    if text.strip():
        try:
            score = round(float(model.match(img, text)), 4)
        except ValueError:  # a captioner without a matching head, or words the matcher lacks
            score = None
    return text, score, _verdict(known, img, text)


def _verdict(known: KnownScenes | None, image: Image.Image, text: str) -> str:
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
    img = _image(image)
    text = _text(text, "sentence", MAX_TEXT_CHARS)
    return round(float(model.match(img, text)), 4)


# ----------------------------------------------------------------------------- ask


def answer(model, image, question: str, known: KnownScenes | None = None) -> tuple[str, dict[str, float], str]:
    """(answer, {top-5 first answer words: probability}, verdict when the truth is known)."""
    _require(model, "can_answer", cannot(model).get("ask", ""))
    img = _image(image)
    question = _text(question, "question", MAX_QUESTION_CHARS)
    said = model.answer(img, question)
    scores = {}
    for word, p in model.answer_scores(img, question, k=5):
        scores[word.strip() or "(end of answer)"] = float(p)
    truth = known.true_answer(img, question) if known else None
    note = ""
    if truth is not None:
        note = f"✓ Right: the answer is **{truth}**." if said.strip() == truth else f"✗ The true answer is **{truth}**."
    return said, scores, note


def example_questions(image, known: KnownScenes, n: int = 5) -> list[str]:
    """Questions about the scene when the demo drew it (remembering their answers), else
    generic Shapes World questions."""
    try:
        img = _image(image)
    except ValueError:
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
    known.remember_answers(img, asked)
    return list(asked)


# ----------------------------------------------------------------------------- search


class Gallery:
    """The shared search index of the demo, built once, on first use or in the background.

    Args:
        model: the model whose embeddings fill it.
        spec: "world:N" (the first N test scenes, cached by `vlp.index.default_gallery`) or a
            folder of images.
    """

    def __init__(self, model, spec: str = DEFAULT_GALLERY, cache_dir=None):
        self.model = model
        self.spec = spec
        self.cache_dir = cache_dir
        self.n_scenes, self.folder = parse_gallery_spec(spec)
        self._index = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self._index is not None

    def get(self):
        """The index, building it first when needed (other callers wait)."""
        if self._index is not None:
            return self._index
        with self._lock:
            if self._index is None:
                if self._error:
                    raise ValueError(self._error)
                start = time.perf_counter()
                try:
                    self._index = self._build()
                except ValueError as err:
                    self._error = f"The search gallery could not be built: {err}"
                    raise ValueError(self._error) from None
                self.seconds = time.perf_counter() - start
        return self._index

    def _build(self):
        from vlp.index import SearchIndex, default_gallery

        if self.folder is not None:
            return SearchIndex.build(self.model, self.folder, progress=False)
        return default_gallery(self.model, n=self.n_scenes, cache_dir=self.cache_dir, progress=False)

    def start(self) -> threading.Thread:
        """Build the index in a background thread (the page serves meanwhile)."""
        def build():
            try:
                self.get()
            except ValueError:
                pass  # kept in self._error; searches report it
        thread = threading.Thread(target=build, name="gallery-build", daemon=True)
        thread.start()
        return thread

    def describe(self) -> str:
        what = f"the first {self.n_scenes:,} Shapes World test scenes" if self.folder is None else f"the images in {self.folder}"
        if self._error:
            return self._error
        if self._index is None:
            return f"The gallery ({what}) is being built; the first search waits for it."
        index = self._index
        kind = {"flat": "exact (FAISS flat)", "ivfpq": "approximate (FAISS IVF-PQ + exact re-rank)",
                "hnsw": "approximate (FAISS HNSW)"}.get(index.kind, index.kind)
        return (f"{len(index):,} images ({what}) and {len(index.texts):,} captions · {kind} search · "
                f"model {self.model.spec} (fingerprint {self.model.fingerprint})")


def parse_gallery_spec(spec: str) -> tuple[int, Path | None]:
    """"world:N" → (N, None); "world" → (2000, None); a folder → (0, folder)."""
    spec = (spec or DEFAULT_GALLERY).strip()
    m = re.fullmatch(r"world(?::(\d+))?", spec)
    if m:
        n = int(m.group(1) or 2000)
        if not 1 <= n <= 1_000_000:
            raise ValueError(f"A world gallery holds 1 to 1,000,000 scenes, got {n}.")
        return n, None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ValueError(f"The gallery {spec!r} is neither world:N nor a folder of images.")
    return 0, folder


def _hit_picture(hit) -> Image.Image | None:
    """What to show for a hit: its scene drawn again, or its file; None when it is gone."""
    try:
        if hit.scene is not None:
            return draw.upscale(world.render(world.Scene.from_dict(hit.scene)), 192)
        if hit.path is not None:
            image = load_image(hit.path)
            image.thumbnail((256, 256))
            return image
    except ValueError:
        return None
    return None


def _hit_label(hit, own: bool, reranked: bool) -> str:
    name = hit.caption or (Path(hit.path).name if hit.path else f"item {hit.id}")
    what = "ITM" if reranked else "cos"
    return f"{hit.rank}. {what} {hit.score:.3f} · {'yours: ' if own else ''}{name}"


def search(model, gallery: Gallery, own, text: str = "", image=None, k: int = 8,
           rerank: bool = False) -> tuple[list[tuple[Image.Image, str]], str]:
    """Search the gallery (and the session's own images, `own`) by a sentence, or by an image
    when the sentence is empty: (pictures with labels, a Markdown summary)."""
    _require(model, "embed_dim", cannot(model).get("search", ""))
    k = int(k)
    if not 1 <= k <= MAX_K:
        raise ValueError(f"Ask for 1 to {MAX_K} results, not {k}.")
    by_text = isinstance(text, str) and bool(text.strip())
    if not by_text and image is None:
        raise ValueError("Type a sentence to search for, or give an image to search with.")
    if by_text and rerank and not getattr(model, "has_itm", True):
        raise ValueError(f"{model.spec} has no image–text matching head to re-rank with; turn re-ranking off.")
    index = gallery.get()
    start = time.perf_counter()
    if by_text:
        query = _text(text, "search text", MAX_TEXT_CHARS)
        found = [(h, False) for h in index.search_text(query, k, rerank=rerank)]
        if own is not None and len(own):
            found += [(h, True) for h in own.search_text(query, k, rerank=rerank)]
    else:
        img = _image(image)
        rerank = False
        found = [(h, False) for h in index.search_image(img, k)]
        if own is not None and len(own):
            found += [(h, True) for h in own.search_image(img, k)]
    found.sort(key=lambda pair: -pair[0].score)
    pictures = []
    for rank, (hit, mine) in enumerate(found[:k], 1):
        hit.rank = rank
        picture = _hit_picture(hit)
        if picture is not None:
            pictures.append((picture, _hit_label(hit, mine, rerank)))
    ms = (time.perf_counter() - start) * 1000
    summary = (f"{len(pictures)} results for **{query}**" if by_text else f"{len(pictures)} images nearest to the image") + (
        f" in {ms:.0f} ms · " + ("re-ranked by the ITM head" if rerank else "ordered by cosine similarity of the embeddings"))
    if not by_text and len(index.texts):
        captions = index.search_texts_for_image(img, k=3)
        summary += "  \nNearest captions in the gallery: " + "; ".join(f"*{h.caption}* ({h.score:.3f})" for h in captions)
    return pictures, summary


def add_images(model, own, files, progress: Callable[[float, str], object] | None = None):
    """Add image files to the session's own index (created on first use); (index, summary)."""
    from vlp.index import SearchIndex

    _require(model, "embed_dim", cannot(model).get("search", ""))
    paths = [str(getattr(f, "name", f)) for f in (files or [])]
    if not paths:
        raise ValueError("Choose one or more image files to add.")
    if len(paths) > MAX_ADD:
        raise ValueError(f"Add at most {MAX_ADD} images at a time, not {len(paths)}.")
    if own is None:
        own = SearchIndex(model)
    added, skipped = 0, []
    chunk = 8
    for start in range(0, len(paths), chunk):
        report = own.add(paths[start:start + chunk], progress=False)
        added += report.added
        skipped += [(Path(where).name, why) for where, why in report.skipped]
        if progress is not None:
            done = min(start + chunk, len(paths))
            progress(done / len(paths), f"indexed {done} of {len(paths)}")
    text = f"Added {added} of your image{'s' * (added != 1)}; you have {len(own)} in all (only you see them)."
    if skipped:
        text += "  \nSkipped: " + "; ".join(f"{name}: {why}" for name, why in skipped)
    return own, text


def index_summary(gallery: Gallery, own) -> str:
    text = "**The gallery:** " + gallery.describe()
    if own is not None and len(own):
        text += f"  \n**Yours:** {len(own)} image{'s' * (len(own) != 1)} (this session only)"
    return text


# ----------------------------------------------------------------------------- attention


def compute_attention(model, image, text: str = "") -> AttentionMaps:
    """The model's attention maps for the image and a text (empty: the caption it writes)."""
    img = _image(image)
    text = _text(text, "text", MAX_TEXT_CHARS) if isinstance(text, str) and text.strip() else None
    return model.attention(img, text)


def attention_caption(maps: AttentionMaps) -> str:
    if not maps.tokens:
        return "No text: this model only shows where the image looks."
    return "The words behind the maps: **" + " ".join(maps.tokens) + "**"


def word_choices(maps: AttentionMaps) -> list[tuple[str, int]]:
    """(label, 1-based index) for each word that has cross-attention."""
    if not maps.cross:
        return []
    return [(f"{i}. {w}", i) for i, w in enumerate(maps.tokens, 1)]


def _clamp(value, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def draw_vision(maps: AttentionMaps, layer: int = 1, head: int = 0) -> Image.Image:
    """Class token → patches in one layer (1-based), one head (1-based) or their mean (head 0)."""
    n_layers, n_heads = len(maps.vision), maps.vision[0].shape[0]
    layer = _clamp(layer, 1, n_layers)
    head = _clamp(head, 0, n_heads)
    heat = maps.class_to_patches(layer - 1, None if head == 0 else head - 1)
    which = "mean of the heads" if head == 0 else f"head {head} of {n_heads}"
    return draw.heatmap(maps.image, heat, f"Vision self-attention: class token → patches\nlayer {layer} of {n_layers}, {which}")


def heads_depend_on_layer(maps: AttentionMaps) -> bool:
    """True when the grid of heads shows only the chosen layer (too many layers × heads)."""
    return len(maps.vision) * (maps.vision[0].shape[0] + 1) > 40


def draw_heads(maps: AttentionMaps, layer: int = 1) -> Image.Image:
    """Every head (and their mean) of every layer as a grid, on one colour scale; only the
    chosen layer's heads when there are too many to see (e.g. 12 × 12 in ViT-B)."""
    n_layers, n_heads = len(maps.vision), maps.vision[0].shape[0]
    names = [f"head {h + 1}" for h in range(n_heads)] + ["mean"]
    if not heads_depend_on_layer(maps):  # all layers, a row each
        panels = [[maps.class_to_patches(l, h) for h in range(n_heads)] + [maps.class_to_patches(l)]
                  for l in range(n_layers)]
        return draw.panel_grid(maps.image, panels, [f"layer {l + 1}" for l in range(n_layers)],
                               [names if l == 0 else [None] * len(names) for l in range(n_layers)],
                               "Every head of the vision encoder: class token → patches")
    layer = _clamp(layer, 1, n_layers)
    heats = [maps.class_to_patches(layer - 1, h) for h in range(n_heads)] + [maps.class_to_patches(layer - 1)]
    per_row = 7
    rows = [heats[i:i + per_row] for i in range(0, len(heats), per_row)]
    titles = [names[i:i + per_row] for i in range(0, len(names), per_row)]
    return draw.panel_grid(maps.image, rows, [""] * len(rows), titles,
                           f"Every head of layer {layer} of {n_layers}: class token → patches")


def draw_rollout(maps: AttentionMaps) -> Image.Image:
    return draw.heatmap(maps.image, maps.rollout(),
                        f"Attention rollout\nclass token through all {len(maps.vision)} layers",
                        label="share of the class token")


def draw_cross(maps: AttentionMaps, word: int = 1) -> Image.Image:
    """Cross-attention behind one word (1-based), mean over the decoder's layers and heads."""
    if not maps.cross or not maps.tokens:
        return draw.message("This model reads no text against the image here: no cross-attention.")
    i = _clamp(word, 1, len(maps.tokens)) - 1
    layers, heads = len(maps.cross), maps.cross[0].shape[0]
    return draw.heatmap(maps.image, maps.word_to_patches(i),
                        f"Cross-attention behind '{maps.tokens[i]}' (word {i + 1})\nmean of {layers} layers × {heads} heads")


def draw_text(maps: AttentionMaps) -> Image.Image:
    """The text self-attention of the words as one matrix: mean over layers and heads."""
    if not maps.text or not maps.tokens:
        return draw.message("No text self-attention to show for this model and input.")
    mean = np.mean([t.mean(axis=0) for t in maps.text], axis=0)
    return draw.matrices([mean], [""], maps.tokens,
                         f"Text self-attention\n(mean of {len(maps.text)} layers × {maps.text[0].shape[0]} heads; "
                         "a row: one word reading the others)")


def draw_attention(maps: AttentionMaps, layer: int = 1, head: int = 0, all_heads: bool = False,
                   word: int = 1) -> tuple[Image.Image, Image.Image | None, Image.Image, Image.Image, Image.Image]:
    """(vision map, grid of every head or None, rollout, cross-attention of `word`, text matrix)."""
    grid = draw_heads(maps, layer) if all_heads else None
    return draw_vision(maps, layer, head), grid, draw_rollout(maps), draw_cross(maps, word), draw_text(maps)


# ----------------------------------------------------------------------------- learn


CLASSIC = {"Q": [[1.0], [2.0], [3.0]], "K": [[4.0], [5.0], [6.0]], "V": [[7.0], [8.0], [9.0]]}


def _rows(table, name: str) -> np.ndarray:
    """A Dataframe's value (list of lists or DataFrame) as a float matrix; empty rows dropped."""
    if isinstance(table, pd.DataFrame):
        table = table.values.tolist()
    if isinstance(table, dict):  # gradio's {"headers": …, "data": …}
        table = table.get("data", [])
    rows = []
    for i, row in enumerate(table or []):
        cells = ["" if c is None else str(c).strip() for c in row]
        if all(c == "" for c in cells):
            continue
        out = []
        for j, c in enumerate(cells):
            try:
                out.append(float(c))
            except ValueError:
                raise ValueError(f"{name}, row {i + 1}, column {j + 1}: {c!r} is not a number.") from None
        rows.append(out)
    if not rows:
        raise ValueError(f"{name} is empty; give it at least one row.")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"{name} has rows of different lengths.")
    return np.array(rows)


def _table(matrix: np.ndarray, row: str, col: str) -> pd.DataFrame:
    df = pd.DataFrame(np.round(matrix, 4), columns=[f"{col}{j + 1}" for j in range(matrix.shape[1])])
    df.insert(0, "", [f"{row}{i + 1}" for i in range(matrix.shape[0])])
    return df


def _fmt(a, spec: str = ".4f") -> str:
    """A vector as [x, y, z]: 4 decimals, or `spec`."""
    return "[" + ", ".join(format(float(x), spec) for x in np.asarray(a, dtype=float).ravel()) + "]"


def worked(q, k, v) -> tuple:
    """Every step of softmax(QKᵀ/√d_k)V for tables Q, K, V: four (explanation, table) pairs
    and the usual mistakes, worked out on these numbers."""
    ex = worked_example(_rows(q, "Q"), _rows(k, "K"), _rows(v, "V"))
    t, d = ex.q.shape
    s, dv = ex.v.shape
    e = [
        (f"**1. Scores** $$S = QK^\\top$$ Q is T×d_k = {t}×{d} and Kᵀ is d_k×S = {d}×{s}, so S is a "
         f"**{t}×{s} matrix**: row i holds query i against every key, e.g. S₁₁ = q₁·k₁ = {ex.scores[0, 0]:.4g}."),
        (f"**2. Scale** $$\\tilde S = \\frac{{S}}{{\\sqrt{{d_k}}}}$$ d_k = {d} is the width of a key (the columns "
         f"of K), so we divide by √{d} = {np.sqrt(d):.4g}."),
        ("**3. Softmax, row by row** $$A_{ij} = \\frac{e^{\\tilde S_{ij}}}{\\sum_{j'} e^{\\tilde S_{ij'}}}$$ "
         f"Each row sums to 1: row 1 is {' + '.join(f'{w:.4f}' for w in ex.weights[0])} = {ex.weights[0].sum():.4f}."),
        (f"**4. Weighted sum of the values** $$O = AV$$ A is {t}×{s} and V is {s}×{dv}, so O is {t}×{dv}: "
         f"O₁₁ = {' + '.join(f'{w:.4f}·{x:.4g}' for w, x in zip(ex.weights[0], ex.v[:, 0]))} = {ex.output[0, 0]:.4f}."),
    ]
    tables = [_table(ex.scores, "q", "k"), _table(ex.scaled, "q", "k"), _table(ex.weights, "q", "k"),
              _table(ex.output, "q", "out")]
    return (*[x for pair in zip(e, tables) for x in pair], mistakes(ex))


def mistakes(ex) -> str:
    """The hand-calculation slips people make most, each worked out on these numbers."""
    t, d = ex.q.shape
    s = ex.k.shape[0]
    lines = ["### Mistakes to avoid"]
    if t == s:
        diag = (ex.q * ex.k).sum(axis=1)
        lines.append(
            f"- **QKᵀ written as a vector.** Pairing each query only with its own key gives {_fmt(diag, '.4g')} — "
            f"just the diagonal. QKᵀ is {t}×{s}: every query meets every key"
            + (f"; and Q·K summed into one number ({diag.sum():.4g}) loses the tokens altogether." if d == 1 else "."))
    else:
        lines.append(f"- **QKᵀ written as a vector.** QKᵀ is {t}×{s}: every one of the {t} queries meets every one of the {s} keys.")
    if t != d:
        wrong = ex.scores / np.sqrt(t)
        w = np.exp(wrong - wrong.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        lines.append(
            f"- **Dividing by √{t} (the number of tokens) instead of √d_k = √{d}.** The first row of weights would be "
            f"{_fmt(w[0])} instead of {_fmt(ex.weights[0])}.")
    plain = ex.scaled / ex.scaled.sum(1, keepdims=True)
    lines.append(
        f"- **Forgetting to exponentiate.** Dividing the scaled scores by their row sum gives {_fmt(plain[0])} for row 1 "
        "— not a softmax, and it breaks with negative scores.")
    raw = np.exp(ex.scaled)
    lines.append(
        f"- **Forgetting to normalise.** e^(scores) alone gives row 1 = {_fmt(raw[0], '.1f')}, which sums to "
        f"{raw[0].sum():.4g}, not 1; the output would be a blow-up of V, not an average of it.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- about


METRIC_NAMES = {  # metrics.json keys in words; unknown keys are shown as they are
    "scenes": "scenes evaluated",
    "vqa_accuracy": "VQA accuracy",
    "vqa_questions": "questions asked",
    "vqa_by_type": "VQA accuracy",
    "caption_accuracy": "captions exactly right",
    "bleu4": "BLEU-4",
    "cider": "CIDEr",
    "t2i_p_at_1": "text → image precision@1",
    "t2i_r_at_5": "text → image recall@5",
    "i2t_r_at_1": "image → text recall@1",
    "itm_accuracy": "ITM accuracy",
    "itm_matched_accuracy": "ITM accuracy, matching pairs",
    "itm_near_miss_accuracy": "ITM accuracy, near misses",
}


def _metric_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def card_markdown(model) -> str:
    """The model's card as Markdown: what it is, what it was trained on, its measured metrics,
    what it cannot do, and how to load other weights."""
    card = model.card()
    lines = [f"## {card.get('name', model.spec)}", "", card.get("description", ""), "",
             f"**Trained on:** {card.get('trained_on', 'unknown')}", "",
             f"**Fingerprint:** `{getattr(model, 'fingerprint', '?')}`", ""]
    metrics = card.get("metrics") or {}
    runs = {"pretrain": "Pretraining", "train": "Training run"}  # how it was made, in order; not splits
    splits = {name: m for name, m in metrics.items() if isinstance(m, dict) and name not in runs}
    if splits:
        rows = OrderedDict()
        for split, m in splits.items():
            for key, value in m.items():
                name = METRIC_NAMES.get(key, key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.setdefault(name, {})[split] = value
                elif isinstance(value, dict):
                    for sub, x in value.items():
                        if isinstance(x, (int, float)):
                            rows.setdefault(f"{name}: {sub}", {})[split] = x
        names = list(splits)
        lines += ["### Measured", "", "| metric | " + " | ".join(names) + " |",
                  "| --- | " + " | ".join("---" for _ in names) + " |"]
        lines += [f"| {key} | " + " | ".join(_metric_value(vals[n]) if n in vals else "" for n in names) + " |"
                  for key, vals in rows.items()]
        lines.append("")
        mistakes_seen = [(split, m["caption_mistakes"]) for split, m in splits.items() if m.get("caption_mistakes")]
        for split, seen in mistakes_seen[:1]:
            lines += [f"Some captions it got wrong ({split} split):", ""]
            lines += [f"- said *{x.get('said')}*, truth *{x.get('truth')}*" for x in seen[:3]]
            lines.append("")
    for key, title in runs.items():
        run = metrics.get(key)
        if isinstance(run, dict) and run:
            how = ", ".join(f"{k} {v}" for k, v in run.items() if k != "command")
            lines += [f"**{title}:** {how}", ""]
            if run.get("command"):
                lines += [f"Reproduce: `{run['command']}`", ""]
    if not metrics:
        lines += ["No measured metrics ship with this model.", ""]
    lines += ["### What it cannot do", ""] + [f"- {x}" for x in card.get("limits", [])]
    lines += ["", "### Other models", "",
              "Start the demo on real weights (downloaded once, then offline):", "",
              f"```\npython app.py {REAL_WEIGHTS}\n```",
              "", "A Shapes World model only knows shapes: on a photo it still answers in circles and squares."]
    return "\n".join(lines)


def model_line(model) -> str:
    """One line for the page header: which model is serving and what it can do."""
    can = [name for name, able in (("captions", getattr(model, "can_caption", True)),
                                   ("answers", getattr(model, "can_answer", True)),
                                   ("search", bool(getattr(model, "embed_dim", 0)))) if able]
    return f"Model **{model.spec}** (`{model.fingerprint}`) · serves " + (", ".join(can) or "attention only")
