"""Attention for people to look at: the worked example, heatmaps over the image, rollout."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        ValueError: when the shapes do not fit together.
    """
    q, k, v = (_as_matrix(a, name) for a, name in ((q, "Q"), (k, "K"), (v, "V")))
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"Q and K need the same width d_k; got {q.shape[1]} and {k.shape[1]}.")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"K and V need one row per key; got {k.shape[0]} and {v.shape[0]} rows.")
    scores = q @ k.T
    scaled = scores / np.sqrt(q.shape[1])
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))  # minus the max: same softmax, no overflow
    weights = shifted / shifted.sum(axis=1, keepdims=True)
    return WorkedExample(q, k, v, scores, scaled, weights, weights @ v)


def _as_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty matrix (tokens × features); got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds a value that is not a finite number.")
    return a
