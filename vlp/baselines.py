"""The classic textbook model, for lesson 3: late fusion of two pooled vectors.

`VisualLanguagePretrain` is the model many textbooks draw for vision-language pretraining: a
CNN (torchvision's ResNet-18) reads the image, a BERT-style bidirectional text encoder (vlp's
own `TextEncoder`) reads the sentence, each is pooled to one vector, the two vectors are
concatenated and one linear layer scores the pair. It is pretrained the classic way: first
each tower alone (the ResNet classifies which objects a scene holds, the text encoder which
objects a sentence names), then both together on matching (true pairs against near misses).

Against vlp's cross-attention model it shows what late fusion cannot do:
- concatenation and one linear layer score `w_img·u + w_txt·v + b`: a sum, so for any two
  texts the difference of their scores is the same on every image (`additive_gap` measures it).
  Matching needs the image and the text to meet inside a non-linearity (`fusion="mlp"`).
- a pooled vector keeps *what* is in the picture, not *where*: a scene and the same scene with
  its two objects swapped pool to nearly the same vector, so no head on top can tell "a red
  circle left of a blue square" from its mirror (`swap_distance` measures it).

Training steps are plain functions (`image_step`, `text_step`, `match_step`) that a lesson or
a test calls in its own loop; `match_accuracy` measures any scorer on the same pairs.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vlp import world
from vlp.data import scene_pixels
from vlp.model import VLP, Batch
from vlp.text import TextConfig, TextEncoder
from vlp.tokenizer import Tokenizer
from vlp.vision import VisionConfig

# Every (shape, colour, size) an object can have: the classes of the unimodal pretraining.
CODES = [(s, c, z) for s in world.SHAPES for c in world.COLORS for z in world.SIZES]
_CODE = {code: i for i, code in enumerate(CODES)}


@dataclass
class ClassicConfig:
    vocab_size: int  # tokenizer size
    eos_id: int  # the text encoder pools at the end token
    text_width: int = 128  # the BERT-style text encoder: as wide and deep as vlp-tiny's
    text_layers: int = 2
    heads: int = 4
    fusion: str = "linear"  # "linear": [u; v] → one linear layer (the textbook); "mlp": a hidden layer first
    hidden: int = 256  # the hidden layer of fusion="mlp"


def resnet_64() -> nn.Module:
    """torchvision's ResNet-18 (random weights), adapted to 64-px images, without its classifier.

    ImageNet's stem (7×7 convolution, stride 2, then max-pool) is built for 224 px. A 3×3
    stride-2 convolution keeps small shapes' edges; the max-pool stays because on a CPU the
    full-resolution variant (stride 1, no pool) is about 10× slower and would starve the
    comparison. 64 px → 16 × 16 at the first stage → 2 × 2 at the last, averaged to (B, 512).
    """
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
    net.fc = nn.Identity()
    return net


def match_head(in_dim: int, fusion: str, hidden: int) -> nn.Module:
    """[u; v] → one score: one linear layer (the textbook) or, with fusion="mlp", a hidden layer first."""
    if fusion == "linear":
        return nn.Linear(in_dim, 1)
    if fusion == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    raise ValueError(f"fusion is 'linear' or 'mlp', not {fusion!r}")


class LateFusion(nn.Module, ABC):
    """Two towers, each pooled to one vector, concatenated, a head to a match score. Subclasses
    give the towers (`encode_image`, `encode_text`) and set `match_head`."""

    match_head: nn.Module

    @abstractmethod
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (B, 3, H, W) → the pooled image vector (B, image dim)."""

    @abstractmethod
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T), right-padded → the pooled text vector (B, text dim)."""

    def match_logits(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B,) match scores before the sigmoid, one per (image, text) pair."""
        return self.fuse(self.encode_image(pixels), self.encode_text(ids))

    def fuse(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Pooled vectors (B, image dim) and (B, text dim) → (B,) match scores before the sigmoid."""
        return self.match_head(torch.cat([image, text], dim=-1)).squeeze(-1)  # [u; v]

    def match(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B,) probability that text i describes image i."""
        return self.match_logits(pixels, ids).sigmoid()


class VisualLanguagePretrain(LateFusion):
    """ResNet-18 + BERT-style text encoder, pooled, concatenated, one layer to a match score."""

    def __init__(self, config: ClassicConfig):
        super().__init__()
        self.config = config
        self.image_encoder = resnet_64()  # (B, 3, 64, 64) → (B, 512)
        # bidirectional (causal=False), pooled at the end token: BERT's [CLS] read at the other end
        self.text_encoder = TextEncoder(TextConfig(
            vocab_size=config.vocab_size, width=config.text_width, layers=config.text_layers,
            heads=config.heads, embed_dim=config.text_width, eos_id=config.eos_id,
        ))
        image_dim, text_dim = 512, config.text_width
        self.image_head = nn.Linear(image_dim, len(CODES))  # pretraining: which objects the scene holds
        self.text_head = nn.Linear(text_dim, len(CODES))  # pretraining: which objects the sentence names
        self.match_head = match_head(image_dim + text_dim, config.fusion, config.hidden)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, 64, 64), normalised → the pooled image vector (B, 512)."""
        return self.image_encoder(pixels)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T), right-padded with 0 → the pooled text vector (B, text_width)."""
        return self.text_encoder(ids, ids != 0).embedding


class FrozenTowers(LateFusion):
    """Late fusion on a pretrained vlp model's own encoders, frozen: its ITC embeddings (the ViT's
    class token and the text encoder's end token, projected and normalised) are the pooled
    vectors; only the head learns. Beside a cross-attention decoder trained on the same frozen
    ViT, it compares the two fusions with the same pretrained start."""

    def __init__(self, net: VLP, fusion: str = "mlp", hidden: int = 256):
        super().__init__()
        self.net = net.requires_grad_(False)
        self.pad_id = net.pad_id
        self.match_head = match_head(net.config.vision.embed_dim + net.config.text.embed_dim, fusion, hidden)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net.encode_image(pixels).embedding.float(), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net.encode_text(ids).embedding.float(), dim=-1)


def new_classic(tokenizer: Tokenizer, fusion: str = "linear") -> VisualLanguagePretrain:
    return VisualLanguagePretrain(ClassicConfig(len(tokenizer), tokenizer.eos_id, fusion=fusion))


# --- the classic pretraining, one step at a time ---------------------------------------------


def attribute_targets(texts: list[str]) -> torch.Tensor:
    """(B, 48) multi-hot: the (shape, colour, size) objects each text names. An object named
    without its size ("a red circle") marks both sizes."""
    out = torch.zeros(len(texts), len(CODES))
    for row, text in enumerate(texts):
        for shape, color, size in world.parse(text).objects:
            for z in [size] if size else world.SIZES:
                out[row, _CODE[shape, color, z]] = 1.0
    return out


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def image_step(model: VisualLanguagePretrain, optimizer, batch: Batch, tokenizer: Tokenizer) -> float:
    """Image classification: which of the 48 objects the scene holds (read off its canonical caption)."""
    targets = attribute_targets([tokenizer.decode(row) for row in batch.captions.tolist()])
    logits = model.image_head(model.encode_image(batch.pixels))  # (B, 48)
    return _step(optimizer, F.binary_cross_entropy_with_logits(logits, targets))


def text_step(model: VisualLanguagePretrain, optimizer, batch: Batch, tokenizer: Tokenizer) -> float:
    """Text classification: which objects the sentence (caption, paraphrase or mention) names."""
    targets = attribute_targets([tokenizer.decode(row) for row in batch.texts.tolist()])
    logits = model.text_head(model.encode_text(batch.texts))  # (B, 48)
    return _step(optimizer, F.binary_cross_entropy_with_logits(logits, targets))


def _pairs(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching pairs of a batch: each image's text (true), then its near miss (false).
    Returns the 2B texts' ids and their labels; image i goes with rows i and B + i."""
    b = batch.pixels.shape[0]
    length = max(batch.texts.shape[1], batch.wrong_texts.shape[1])
    ids = torch.cat([F.pad(t, (0, length - t.shape[1])) for t in (batch.texts, batch.wrong_texts)])  # (2B, L)
    return ids, torch.cat([torch.ones(b), torch.zeros(b)])


def match_step(model: LateFusion, optimizer, batch: Batch) -> float:
    """Joint matching: each image's text is a true pair, its near miss (one attribute or the
    relation changed) a false one; binary cross-entropy, both kinds weighing the same."""
    ids, labels = _pairs(batch)
    image = model.encode_image(batch.pixels)  # (B, 512): once, for both of its pairs
    logits = model.fuse(torch.cat([image, image]), model.encode_text(ids))  # (2B,)
    return _step(optimizer, F.binary_cross_entropy_with_logits(logits, labels))


def vlp_match_step(net: VLP, optimizer, batch: Batch) -> float:
    """The same pairs and labels for vlp's cross-attention model: its decoder reads each text
    against all the image's tokens and its ITM head says match or not."""
    ids, labels = _pairs(batch)
    tokens = net.encode_image(batch.pixels).tokens  # (B, 1 + grid², width)
    logits = net.match_logits(ids, torch.cat([tokens, tokens]))  # (2B, 2)
    return _step(optimizer, F.cross_entropy(logits, labels.long()))


# --- measuring --------------------------------------------------------------------------------


@dataclass
class MatchPairs:
    """Test pairs for matching: each scene with its caption, an attribute near miss and, for
    two-object scenes, the relation near miss (the same objects, their places swapped)."""

    pixels: torch.Tensor  # (N, 3, H, W)
    captions: list[str]  # true of their scene
    near_misses: list[str]  # one attribute changed: false
    relation_scenes: torch.Tensor  # (M,) the scenes with two objects
    relation_misses: list[str]  # per such scene, its caption with the objects swapped: false


def match_pairs(split: str, n: int, vision: VisionConfig, seed: int = 11) -> MatchPairs:
    scenes = world.scenes(split, n)
    rng = np.random.default_rng(seed)
    near = []
    for s in scenes:
        text = world.near_miss(s, "full", rng)
        while len(s.objects) == 2 and text == world.swap_relation(s):  # attributes only here
            text = world.near_miss(s, "full", rng)
        near.append(text)
    two = [i for i, s in enumerate(scenes) if len(s.objects) == 2]
    return MatchPairs(
        pixels=scene_pixels(scenes, vision),
        captions=[world.caption(s) for s in scenes],
        near_misses=near,
        relation_scenes=torch.tensor(two),
        relation_misses=[world.swap_relation(scenes[i]) for i in two],
    )


@torch.no_grad()
def match_accuracy(score, pairs: MatchPairs, tokenizer: Tokenizer, batch_size: int = 100) -> dict[str, float]:
    """Share of pairs judged right (probability > 0.5 for true pairs, < 0.5 for false ones), and
    share of scenes whose caption scores above its near miss (chance: one half), which a model
    that has not found its threshold yet (saying "no" to everything) cannot pass by its bias.

    `score(pixels, ids)` → (B,) match probabilities; e.g. `classic.match` or `vlp_match(net)`.
    """
    def probs(pixels, texts):
        out = []
        for i in range(0, len(texts), batch_size):
            ids, _ = tokenizer.batch(texts[i : i + batch_size], 32)
            out.append(score(pixels[i : i + batch_size], ids).float())
        return torch.cat(out)

    true = probs(pairs.pixels, pairs.captions)  # (N,)
    near = probs(pairs.pixels, pairs.near_misses)  # (N,)
    relation = probs(pairs.pixels[pairs.relation_scenes], pairs.relation_misses)  # (M,)
    share = lambda right: right.float().mean().item()
    return {
        "true pairs": share(true > 0.5),
        "near misses": share(near < 0.5),
        "relation near misses": share(relation < 0.5),
        "caption above near miss": share(true > near),
        "caption above relation near miss": share(true[pairs.relation_scenes] > relation),
    }


def vlp_match(net: VLP):
    """vlp's cross-attention matching as a scorer for `match_accuracy`: the ITM head's probability."""
    def score(pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return net.match_logits(ids, net.encode_image(pixels).tokens).softmax(-1)[:, 1]

    return score


@torch.no_grad()
def additive_gap(model: LateFusion, pixels: torch.Tensor, ids_a: torch.Tensor,
                 ids_b: torch.Tensor) -> torch.Tensor:
    """For each image, score(image, text a) − score(image, text b), before the sigmoid; the
    texts are one pair (1, T) each. With fusion="linear" every image gets the same gap: the
    head adds an image term and a text term, and the image term cancels."""
    n = pixels.shape[0]
    return model.match_logits(pixels, ids_a.expand(n, -1)) - model.match_logits(pixels, ids_b.expand(n, -1))


def swapped(scene: world.Scene) -> world.Scene:
    """The two-object scene with its objects in each other's place (what `swap_relation` describes)."""
    a, b = scene.objects
    return dataclasses.replace(scene, objects=[dataclasses.replace(a, x=b.x, y=b.y),
                                               dataclasses.replace(b, x=a.x, y=a.y)])


@torch.no_grad()
def swap_distance(encode, scenes: list[world.Scene], vision: VisionConfig) -> float:
    """How far apart `encode` puts a scene and its swapped twin, relative to two different scenes:
    median ‖f(s) − f(swapped s)‖ / median ‖f(s) − f(next scene)‖ over two-object scenes.
    Near 0: the vector does not know which object is where."""
    two = [s for s in scenes if len(s.objects) == 2]
    f = encode(scene_pixels(two, vision)).flatten(1)
    g = encode(scene_pixels([swapped(s) for s in two], vision)).flatten(1)
    return ((f - g).norm(dim=1).median() / (f - f.roll(1, 0)).norm(dim=1).median()).item()
