"""Training batches drawn from Shapes World: fresh scenes every batch, every task at once.

Rendering is fast (about 10,000 scenes/s), so each batch holds new scenes: the model never
sees the same picture twice and cannot memorise.
"""
from __future__ import annotations

import numpy as np
import torch

from vlp import world
from vlp.model import Batch
from vlp.tokenizer import Tokenizer
from vlp.vision import VisionConfig, normalise

_CODES = {(s, c, z): i for i, (s, c, z) in enumerate(
    (s, c, z) for s in world.SHAPES for c in world.COLORS for z in world.SIZES)}
_PAIRS = {(s, c): i for i, (s, c) in enumerate((s, c) for s in world.SHAPES for c in world.COLORS)}


def build_tokenizer() -> Tokenizer:
    return Tokenizer.from_words(world.vocabulary())


class WorldBatches:
    """An endless stream of training batches from one split.

    Args:
        split: the world split to draw scenes from ("train" for pretraining).
        tokenizer: vlp's tokenizer over the world's vocabulary.
        vision: the image encoder's config (size and normalisation).
        seed: batches are a pure function of (seed, step), so a resumed run sees the same data.
        text_length, qa_length: padded lengths of the text and question–answer sequences.
    """

    def __init__(self, split: str, tokenizer: Tokenizer, vision: VisionConfig, seed: int = 0,
                 text_length: int = 32, qa_length: int = 40):
        self.split, self.tok, self.vision, self.seed = split, tokenizer, vision, seed
        self.text_length, self.qa_length = text_length, qa_length

    def batch(self, step: int, batch_size: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        start = int(rng.integers(0, 2**31 - batch_size))  # scenes are indexed; pick a fresh run of them
        scenes = world.scenes(self.split, batch_size, start=start)
        pixels = torch.from_numpy(world.render_array(scenes, self.vision.image_size))
        texts, kinds, wrong = [], [], []
        for scene in scenes:
            text, kind = self._describe(scene, rng)
            texts.append(text)
            kinds.append(kind)
            wrong.append(world.near_miss(scene, kind, rng))
        qa, answer_mask, qa_images = self._questions(scenes, rng)
        captions = [world.caption(s) for s in scenes]
        return Batch(
            pixels=normalise(pixels, self.vision),
            texts=self._ids(texts),
            positives=torch.from_numpy(positives(scenes, texts, kinds, captions)),
            true_of=torch.from_numpy(true_of(scenes, texts, captions)),
            captions=self._ids(captions),
            wrong_texts=self._ids(wrong),
            qa=qa,
            answer_mask=answer_mask,
            qa_images=qa_images,
        )

    def _ids(self, texts: list[str]) -> torch.Tensor:
        ids, keep = self.tok.batch(texts, self.text_length)
        return ids[:, : int(keep.sum(1).max())]  # no column of padding only

    @staticmethod
    def _describe(scene: world.Scene, rng) -> tuple[str, str]:
        """A text for contrastive learning: half canonical captions, then paraphrases and mentions."""
        r = rng.random()
        if r < 0.5:
            return world.caption(scene), "full"
        if r < 0.75:
            return world.paraphrase(scene, rng), "full"
        obj = scene.objects[rng.integers(len(scene.objects))]
        return world.mention(obj, with_size=bool(rng.random() < 0.5)), "mention"

    def _questions(self, scenes, rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two questions per scene: one of any type, one that favours relations.

        Relations are the hardest questions (they bind two named objects to their positions),
        so they get more of the training signal.
        """
        rows, images = [], []
        for i, scene in enumerate(scenes):
            types = world.question_types(scene)
            hard = "relation" if "relation" in types and rng.random() < 0.6 else None
            for qtype in (None, hard):
                question, answer, _ = world.sample_question(scene, rng, qtype)
                q, a = self.tok.encode(question), self.tok.encode(answer)
                rows.append(([self.tok.bos_id, *q, self.tok.sep_id, *a, self.tok.eos_id], len(q) + 2))
                images.append(i)
        length = max(len(r) for r, _ in rows)
        ids = torch.full((len(rows), length), self.tok.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, (row, answer_start) in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, answer_start : len(row)] = True  # the answer and [EOS] are the targets
        return ids, mask, torch.tensor(images)


def _object_codes(scenes) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot (B, 48) "holds (shape, colour, size)" and (B, 24) "holds (shape, colour)"."""
    have = np.zeros((len(scenes), len(_CODES)), bool)
    have_pair = np.zeros((len(scenes), len(_PAIRS)), bool)
    for j, s in enumerate(scenes):
        for o in s.objects:
            have[j, _CODES[o.shape, o.color, o.size]] = True
            have_pair[j, _PAIRS[o.shape, o.color]] = True
    return have, have_pair


def _holds_one(text: str, have: np.ndarray, have_pair: np.ndarray) -> np.ndarray:
    (shape, color, size), = world.parse(text).objects
    return have[:, _CODES[shape, color, size]] if size else have_pair[:, _PAIRS[shape, color]]


def positives(scenes, texts, kinds, captions) -> np.ndarray:
    """(B, B) bool, the contrastive targets: text i (written for scene i) describes scene j.

    A caption or paraphrase describes the scenes with the same canonical caption; a mention
    ("a red circle") every scene that holds what it names. The same one-object sentence is
    thus sometimes a caption and sometimes a mention: the embedding learns to prefer the
    scene it describes whole, which is what image → text retrieval wants.
    """
    have, have_pair = _object_codes(scenes)
    same_caption = np.array(captions)[:, None] == np.array(captions)[None, :]
    return np.stack([same_caption[i] if kind == "full" else _holds_one(text, have, have_pair)
                     for i, (text, kind) in enumerate(zip(texts, kinds))])


def true_of(scenes, texts, captions) -> np.ndarray:
    """(B, B) bool, the matching truth: everything text i names is in scene j.

    Unlike `positives` this depends on the text alone, never on why it was drawn: one named
    object fits every scene that holds it; a description of two or three objects fits the
    scenes with the same canonical caption.
    """
    have, have_pair = _object_codes(scenes)
    same_caption = np.array(captions)[:, None] == np.array(captions)[None, :]
    return np.stack([_holds_one(text, have, have_pair) if len(world.parse(text).objects) == 1 else same_caption[i]
                     for i, text in enumerate(texts)])
