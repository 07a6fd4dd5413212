# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 — Attention by hand
#
# **Question:** what does softmax(QKᵀ/√d_k)V compute, number by number, and how do vlp's attention
# layers and PyTorch's own `nn.MultiheadAttention` agree on it?
#
# **Time:** full run 38 s, measured on this project's 2-core machine under a load average of 16
# (other programs training beside it; a quiet laptop takes a few seconds); the quick run (`VLP_LESSON_QUICK=1`, what CI runs) is the same
# lesson — nothing here trains.
#
# Open it with `jupytext --to ipynb lessons/01_attention.py` and Jupyter, or run it as a script:
# `python lessons/01_attention.py`. The Learn tab of the demo (`python app.py`) works the same
# example on tables you can edit.

# %%
import os

import numpy as np
import torch

import vlp
from vlp.layers import Attention, causal_mask, padding_mask, scaled_dot_product_attention

QUICK = os.environ.get("VLP_LESSON_QUICK") == "1"  # nothing here trains: quick and full are the same
np.set_printoptions(precision=4, suppress=True)
torch.manual_seed(0);  # the layers below start from random weights

# %% [markdown]
# ## 1. Three tokens, one feature each
#
# Three tokens, each with a query, a key and a value of width 1 (d_k = 1). Written as matrices
# with one row per token, Q, K and V are 3 × 1.

# %%
Q = np.array([[1.0], [2.0], [3.0]])  # (T=3 tokens, d_k=1)
K = np.array([[4.0], [5.0], [6.0]])  # (S=3 tokens, d_k=1)
V = np.array([[7.0], [8.0], [9.0]])  # (S=3 tokens, d_v=1)
d_k = Q.shape[1]

# %% [markdown]
# **Step 1, the scores QKᵀ.** (3 × 1) times (1 × 3) is a **3 × 3 matrix**: every query meets
# every key. Row i is "how much does token i's query like each key".

# %%
scores = Q @ K.T
print(scores)

# %% [markdown]
# **Step 2, scale by √d_k.** d_k is the width of a key — here 1 — not the number of tokens, so
# the scores do not change.

# %%
scaled = scores / np.sqrt(d_k)
print(scaled)

# %% [markdown]
# **Step 3, softmax along each row** (over the keys): exponentiate, divide by the row's sum. We
# subtract each row's maximum first; that leaves the softmax unchanged and keeps exp() from
# overflowing.

# %%
e = np.exp(scaled - scaled.max(axis=1, keepdims=True))
weights = e / e.sum(axis=1, keepdims=True)
print(weights)
print("row sums:", weights.sum(axis=1))

# %% [markdown]
# **Step 4, the output AV**: each token's output is an average of the values, weighted by its row.

# %%
out = weights @ V
print(out)

# %% [markdown]
# Every query here is positive, so the largest key (6) wins in every row, and more so the larger
# the query: token 3 puts 95 % of its weight on token 3's value, and its output 8.948 is almost 9.
#
# The same numbers from vlp: `vlp.worked_example` (the function behind the demo's Learn tab) and
# the attention formula every vlp layer runs (`vlp.layers.scaled_dot_product_attention`, in torch).

# %%
ex = vlp.worked_example(Q, K, V)
np.testing.assert_allclose(ex.scores, scores)
np.testing.assert_allclose(ex.weights, weights)
np.testing.assert_allclose(ex.output, out)

t_out, t_weights = scaled_dot_product_attention(*(torch.tensor(a) for a in (Q, K, V)))
np.testing.assert_allclose(t_out.numpy(), out)
np.testing.assert_allclose(t_weights.numpy(), weights)
print("by hand, vlp.worked_example and vlp.layers agree:", out.ravel())

# %% [markdown]
# ## 2. The usual mistakes, on the same numbers
#
# **Softmax over the wrong axis.** `softmax(axis=0)` normalises each *column* (each key over the
# queries). The rows no longer sum to 1, so an output is no longer an average of the values: it
# can fall outside the range of V (7 … 9).

# %%
e0 = np.exp(scaled - scaled.max(axis=0, keepdims=True))
wrong_axis = e0 / e0.sum(axis=0, keepdims=True)
print("weights, softmax over the queries:\n", wrong_axis)
print("row sums:", wrong_axis.sum(axis=1), "→ outputs", (wrong_axis @ V).ravel())
assert not np.allclose(wrong_axis.sum(axis=1), 1)

# %% [markdown]
# **Dividing by √T (the number of tokens) instead of √d_k.** With d_k = 1 the right scale is 1;
# dividing by √3 flattens the weights.

# %%
e3 = np.exp(scores / np.sqrt(3) - (scores / np.sqrt(3)).max(axis=1, keepdims=True))
print("first row with √3:", (e3 / e3.sum(1, keepdims=True))[0], " right:", weights[0])

# %% [markdown]
# **No scaling at all.** With d_k = 1 it makes no difference — which is why the mistake goes
# unnoticed. With real widths it does: the dot product of two random d-dimensional vectors has a
# standard deviation of √d, so unscaled scores grow with the width and the softmax saturates
# (one weight near 1, the rest near 0, and gradients near zero). Measure it at d_k = 64:

# %%
def max_weight(d: int, scale: bool, tokens: int = 16, trials: int = 200) -> float:
    """The mean largest attention weight of a row, for random unit-variance queries and keys."""
    g = torch.Generator().manual_seed(d)
    q, k = torch.randn(trials, tokens, d, generator=g), torch.randn(trials, tokens, d, generator=g)
    s = q @ k.transpose(-2, -1) / (d**0.5 if scale else 1.0)
    return s.softmax(-1).max(-1).values.mean().item()


for d in (1, 16, 64):
    print(f"d_k = {d:2d}: largest weight of a row  scaled {max_weight(d, True):.2f}   unscaled {max_weight(d, False):.2f}")
assert max_weight(64, False) > 0.8 > 0.5 > max_weight(64, True)

# %% [markdown]
# Scaled, the typical largest weight stays the same whatever the width; unscaled, at d_k = 64 the
# softmax has nearly become an argmax.
#
# **Forgetting the mask.** A language model predicts token t + 1 from tokens 0 … t, so token t must
# not see later tokens. A causal mask blocks them (True = "may attend", vlp's and
# `F.scaled_dot_product_attention`'s convention). Without it, changing the *last* value changes
# the *first* token's output: the future leaks in.

# %%
mask = causal_mask(3)
print(mask)
q, k, v = (torch.tensor(a) for a in (Q, K, V))
v_changed = v.clone()
v_changed[2] = 100.0  # change only the third token's value
for name, m in (("no mask", None), ("causal mask", mask)):
    before, _ = scaled_dot_product_attention(q, k, v, m)
    after, _ = scaled_dot_product_attention(q, k, v_changed, m)
    print(f"{name:11s}: token 1's output {before[0, 0]:.4f} → {after[0, 0]:.4f} when token 3's value changes")
masked_out, masked_w = scaled_dot_product_attention(q, k, v, mask)
print("causal weights:\n", masked_w.numpy())
assert masked_out[0, 0] == 7.0  # token 1 sees only itself

# %% [markdown]
# ## 3. Multi-head attention: vlp's layer against PyTorch's
#
# A real layer projects each token to queries, keys and values (learned matrices), splits the
# width into heads that attend independently, and mixes the heads back with an output
# projection. `vlp.layers.Attention` stores its weights under the names
# `torch.nn.MultiheadAttention` uses (`in_proj_weight`, `in_proj_bias`, `out_proj`), so one can be
# loaded into the other and the two must agree.

# %%
dim, heads, T = 32, 4, 6
ours = Attention(dim, heads).eval()
theirs = torch.nn.MultiheadAttention(dim, heads, batch_first=True).eval()
theirs.load_state_dict(ours.state_dict())
print({name: tuple(p.shape) for name, p in ours.state_dict().items()})

x = torch.randn(2, T, dim)  # (batch, tokens, width)
with torch.no_grad():
    out_ours, w_ours = ours(x, need_weights=True)  # w: (B, heads, T, T)
    out_theirs, w_theirs = theirs(x, x, x, need_weights=True, average_attn_weights=False)
torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
torch.testing.assert_close(w_ours, w_theirs, atol=1e-5, rtol=1e-5)
print("no mask: outputs and per-head weights agree; largest difference",
      f"{(out_ours - out_theirs).abs().max():.1e}")

# %% [markdown]
# **Masks, and a trap between libraries.** vlp (like `F.scaled_dot_product_attention`) marks
# what a query *may* see with True; `nn.MultiheadAttention`'s boolean `attn_mask` and
# `key_padding_mask` mark what it may *not* see. The same mask must be flipped between them.
#
# Below, a causal mask, and a padding mask for a batch whose second sequence has only 4 real
# tokens (the last 2 are padding, which no query may attend to).

# %%
keep = torch.tensor([[True] * T, [True] * 4 + [False] * 2])  # (B, T): real tokens
vlp_mask = causal_mask(T) & padding_mask(keep)  # (B, 1, T, T) broadcast over heads
with torch.no_grad():
    out_ours, w_ours = ours(x, mask=vlp_mask, need_weights=True)
    out_theirs, w_theirs = theirs(x, x, x, attn_mask=~causal_mask(T), key_padding_mask=~keep,
                                  need_weights=True, average_attn_weights=False)
    out_fused, _ = ours(x, mask=vlp_mask)  # the fused kernel: no weights, same output
torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
torch.testing.assert_close(w_ours, w_theirs, atol=1e-5, rtol=1e-5)
torch.testing.assert_close(out_fused, out_ours, atol=1e-5, rtol=1e-5)
print("causal + padding: vlp (explicit and fused) and torch agree")
print("sequence 2, head 1, weights (rows: queries, columns: keys):\n", w_ours[1, 0].numpy().round(2))

with torch.no_grad():
    out_unflipped, _ = theirs(x, x, x, attn_mask=causal_mask(T), key_padding_mask=~keep)
wrong = (out_unflipped[0, :-1] - out_ours[0, :-1]).abs().max()
print(f"vlp's mask passed to torch unflipped: sequence 1 differs by up to {wrong:.2f} (each query now sees only "
      f"later tokens); its last query may see nothing at all and gets {out_unflipped[0, -1, 0].item()}")
assert wrong > 0.1 and out_unflipped[0, -1].isnan().all()

# %% [markdown]
# In the printed weights, row i is zero right of column i (causal) and in columns 5 and 6
# (padding), and every row still sums to 1.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, m, title in ((axes[0], weights, "three tokens, no mask"), (axes[1], masked_w.numpy(), "three tokens, causal")):
    ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
    for (i, j), w in np.ndenumerate(m):
        ax.text(j, i, f"{w:.3f}", ha="center", va="center", color="white" if w < 0.5 else "black")
    ax.set(title=title, xlabel="key", ylabel="query", xticks=range(3), yticks=range(3))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the numbers show
#
# - By hand, QKᵀ of three one-feature tokens is a 3 × 3 matrix, the softmax runs along each row,
#   and the outputs (8.575, 8.851, 8.948) are averages of the values 7, 8 and 9.
# - The wrong softmax axis breaks "each row sums to 1"; the missing scale is invisible at d_k = 1
#   and saturates the softmax at d_k = 64; a missing causal mask lets a later token change an
#   earlier one's output.
# - vlp's `Attention` is `nn.MultiheadAttention` with the same weights: outputs and per-head
#   weights agree to 1e-5 with and without masks — once the masks are flipped to torch's
#   convention.
