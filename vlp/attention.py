"""Attention for people to look at: the worked example, heatmaps over the image, rollout."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vlp.errors import BadArgument
from vlp.limits import MAX_WORKED_TOKENS, MAX_WORKED_WIDTH

if TYPE_CHECKING:
    from PIL import Image


@dataclass
class WorkedExample:
    q: np.ndarray  # (T, d_k) queries
    k: np.ndarray  # (S, d_k) keys
    v: np.ndarray  # (S, d_v) values
    scores: np.ndarray  # (T, S) QKᵀ: every query against every key
    scaled: np.ndarray  # (T, S) QKᵀ / √d_k
    weights: np.ndarray  # (T, S) row-wise softmax of `scaled`; each row sums to 1
    output: np.ndarray  # (T, d_v) weights @ V


def worked_example(q, k, v) -> WorkedExample:
    """Every step of softmax(QKᵀ/√d_k)V, as arrays, for teaching.

    The classic three-token case, d_k = 1, Q = [1, 2, 3]ᵀ, K = [4, 5, 6]ᵀ, V = [7, 8, 9]ᵀ:

        QKᵀ is a 3×3 matrix (an outer product here), not a vector:
            [[ 4,  5,  6],
             [ 8, 10, 12],
             [12, 15, 18]]
        scaled by √d_k = √1 = 1 (not √3: d_k is the key width, not the number of tokens),
        so it is unchanged;
        softmax of each row (exponentiate, then divide by the row's sum):
            [[0.0900, 0.2447, 0.6652],
             [0.0159, 0.1173, 0.8668],
             [0.0024, 0.0473, 0.9503]]
        output = weights @ V:
            [[8.5752], [8.8509], [8.9480]]

    Args:
        q: (T, d_k) or (T,) queries; k: (S, d_k) or (S,) keys; v: (S, d_v) or (S,) values.
            A 1-D input is read as one feature per token (d = 1).
    Raises:
        BadArgument: when the shapes do not fit together, are larger than a worked example
            needs (`vlp.limits.MAX_WORKED_TOKENS` × `MAX_WORKED_WIDTH`), or the numbers overflow.
    """
    q, k, v = (_as_matrix(a, name) for a, name in ((q, "Q"), (k, "K"), (v, "V")))
    if q.shape[1] != k.shape[1]:
        raise BadArgument(f"Q and K need the same width d_k; got {q.shape[1]} and {k.shape[1]}.")
    if k.shape[0] != v.shape[0]:
        raise BadArgument(f"K and V need one row per key; got {k.shape[0]} and {v.shape[0]} rows.")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = q @ k.T
    if not np.isfinite(scores).all():
        raise BadArgument("The numbers are too large: QKᵀ overflows; use smaller values.")
    scaled = scores / np.sqrt(q.shape[1])
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))  # minus the max: same softmax, no overflow
    weights = shifted / shifted.sum(axis=1, keepdims=True)
    return WorkedExample(q, k, v, scores, scaled, weights, weights @ v)


def _as_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise BadArgument(f"{name} must be a non-empty matrix (tokens × features); got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise BadArgument(f"{name} holds a value that is not a finite number.")
    if a.shape[0] > MAX_WORKED_TOKENS or a.shape[1] > MAX_WORKED_WIDTH:
        raise BadArgument(f"{name} is {a.shape[0]}×{a.shape[1]}; a worked example takes at most "
                          f"{MAX_WORKED_TOKENS} tokens × {MAX_WORKED_WIDTH} features.")
    return a


@dataclass
class AttentionMaps:
    """What a model attended to for one image (and optionally one text), ready to draw.

    Arrays are float32 numpy, batch dimension dropped. T = 1 + grid² image tokens (class first).
    """

    image: "Image.Image"  # the image as the model saw it, at its input resolution
    grid: int  # patches per side
    vision: list[np.ndarray]  # per layer (heads, T, T) image self-attention
    tokens: list[str] = field(default_factory=list)  # the text's words: given, or generated
    cross: list[np.ndarray] = field(default_factory=list)  # per layer (heads, len(tokens), T): word → image
    text: list[np.ndarray] = field(default_factory=list)  # per layer (heads, len(tokens), len(tokens))

    def class_to_patches(self, layer: int, head: int | None = None) -> np.ndarray:
        """(grid, grid) attention of the class token to each patch; mean over heads if head is None."""
        a = self.vision[layer][:, 0, 1:]  # (heads, grid²)
        a = a.mean(0) if head is None else a[head]
        return a.reshape(self.grid, self.grid)

    def rollout(self) -> np.ndarray:
        """(grid, grid) attention rollout of the class token over the patches (Abnar & Zuidema)."""
        return attention_rollout(self.vision)[0, 1:].reshape(self.grid, self.grid)

    def word_to_patches(self, word_index: int, layer: int | None = None) -> np.ndarray:
        """(grid, grid) cross-attention behind one word, mean over heads (and layers if None)."""
        layers = self.cross if layer is None else [self.cross[layer]]
        a = np.mean([c[:, word_index, :] for c in layers], axis=(0, 1))  # (T,) or (grid²,)
        return a[-self.grid**2 :].reshape(self.grid, self.grid)


def attention_rollout(layers: list[np.ndarray], residual: float = 0.5) -> np.ndarray:
    """Multiply the head-averaged attention of each layer, counting the residual path.

    Each layer's effective mixing is residual·I + (1 − residual)·A (rows re-normalised); the
    product over layers says how much each input token flows into each output token.

    Args:
        layers: per layer (heads, T, T) attention weights, first layer first.
    Returns:
        (T, T) rolled-out attention; row 0 is the class token's.
    """
    t = layers[0].shape[-1]
    out = np.eye(t)
    for a in layers:
        a = residual * np.eye(t) + (1 - residual) * a.mean(axis=0)
        a = a / a.sum(axis=-1, keepdims=True)
        out = a @ out
    return out
