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
# # Lesson 7 — Composition: a yellow square it has never seen
#
# **Question:** vlp-tiny has seen yellow things and squares, but never a yellow square. Does it
# compose the two? What does it say for one, where does it look while saying it, and does one
# remedy — hiding the colour word from the decoder — help?
#
# **Time:** full run 3 min (173 s with `OMP_NUM_THREADS=1 python lessons/run.py 7`; 2 cores,
# load average about 1; 251 s beside CI's tests),
# of which the remedy's two fine-tunings take about 3 minutes. The quick run
# (`VLP_LESSON_QUICK=1`, CI) captions 40 novel and 40 test scenes instead of 300 each, draws each
# colour–shape pair once instead of four times, and fine-tunes 4 steps instead of 300.

# %%
import copy
import os
from collections import Counter, defaultdict

import matplotlib.pyplot as plt
import numpy as np
import torch

import vlp
from vlp import world
from vlp.data import WorldBatches, scene_pixels
from vlp.train import TrainConfig, fit
from vlp.word_dropout import caption_step, captions, hiding
from vlp.world.scene import HELD_OUT, Scene

QUICK = os.environ.get("VLP_LESSON_QUICK") == "1"
SCENES = 40 if QUICK else 300  # novel and test scenes captioned
DRAWS = 1 if QUICK else 4  # hand-made one-object scenes per colour–shape pair
model = vlp.load(device="cpu")

# %% [markdown]
# ## The novel split
#
# Shapes World holds four (colour, shape) pairs out of training: no train, validation or test scene
# holds one, and every scene of the `novel` split holds at least one (docs/world.md). Every colour
# and every shape is seen in training — only these combinations are new.

# %%
print("held out:", sorted(f"{c} {s}" for c, s in HELD_OUT))

# %% [markdown]
# ## One yellow square
#
# A hand-made scene: one large yellow square in the middle. We ask vlp-tiny to caption it, to
# answer questions about it, and to score sentences about it with its matching (ITM) head.

# %%
def one_object(shape: str, color: str, x: float = 0.5, y: float = 0.5):
    scene = Scene.from_dict({"objects": [{"shape": shape, "color": color, "size": "large", "x": x, "y": y}]})
    return scene, world.render(scene)


scene, image = one_object("square", "yellow")
caption = model.caption(image)
print("caption:", caption)
for question in ("what shape is the yellow object?", "what color is the square?", "is there a yellow square?"):
    print(f"{question:35s}", ", ".join(f"{a} {p:.2f}" for a, p in model.answer_scores(image, question, 3)))
for text in ("a large yellow square", "a large yellow circle", "a large yellow diamond", "a large orange square"):
    print(f"match({text!r}) = {model.match(image, text):.3f}")

plt.figure(figsize=(2.2, 2.2))
plt.imshow(image)
plt.title(caption, fontsize=8)
plt.axis("off")
plt.show()

# %% [markdown]
# Compare the three ways of asking: the caption *writes* the shape word after "yellow"; the
# answers and the ITM head *read* it. If they disagree, the error is in writing (the decoder's
# word prior); if they agree on the wrong shape, the image tokens themselves already say it.
# "What the numbers show" at the end reads this run's figures.
#
# ## How often, over the novel split
#
# We caption novel scenes and count, for each held-out object in them, whether the caption names
# its colour and shape together — and what it says instead. The same count on test scenes (only
# seen pairs) is the baseline.

# %%
def named_pairs(text: str) -> set[tuple[str, str]]:
    parsed = world.parse(text)
    return {(color, shape) for shape, color, _ in parsed.objects} if parsed else set()


def caption_counts(split: str, write=lambda scenes: model.caption_many([world.render(s) for s in scenes])):
    """Per held-out pair (and for seen pairs together): objects whose pair the caption names, objects,
    and what the captions said instead. `write(scenes)` captions the scenes (default: vlp-tiny)."""
    scenes = world.scenes(split, SCENES)
    captions = write(scenes)
    right, total, instead = Counter(), Counter(), defaultdict(Counter)
    for s, c in zip(scenes, captions):
        named = named_pairs(c)
        for o in s.objects:
            pair = (o.color, o.shape)
            key = pair if pair in HELD_OUT else "seen pairs"
            total[key] += 1
            if pair in named:
                right[key] += 1
            elif pair in HELD_OUT:
                guesses = [f"{c2} {s2}" for c2, s2 in named if c2 == o.color or s2 == o.shape]
                instead[f"{o.color} {o.shape}"].update(guesses or ["(neither word)"])
    return right, total, instead


novel_right, novel_total, said = caption_counts("novel")
test_right, test_total, _ = caption_counts("test")
print(f"{'object':18s} caption names it")
for key in sorted(novel_total, key=str):
    print(f"{' '.join(key) if isinstance(key, tuple) else key + ' (novel)':18s} {novel_right[key]:4d} / {novel_total[key]:<4d}"
          f" {novel_right[key] / novel_total[key]:.0%}")
print(f"{'seen pairs (test)':18s} {test_right['seen pairs']:4d} / {test_total['seen pairs']:<4d}"
      f" {test_right['seen pairs'] / test_total['seen pairs']:.0%}")
print("\nwhat the captions say instead (a named object sharing the colour or the shape):")
for pair, guesses in said.items():
    print(f"  {pair:16s}", ", ".join(f"{g} ×{n}" for g, n in guesses.most_common(3)))

seen_rate = test_right["seen pairs"] / test_total["seen pairs"]
held_rates = {p: novel_right[p] / novel_total[p] for p in HELD_OUT if novel_total[p]}
worst = min(held_rates, key=held_rates.get)
# the key result: a held-out pair is named far less often (full run: the yellow square, 34 % against 99 %)
assert held_rates[worst] < seen_rate - 0.15, worst

# %% [markdown]
# ## Where it looks
#
# Is the model looking at the wrong thing, or looking at the right thing and naming it wrongly?
# For one-object scenes of every colour–shape pair (the held-out ones and the 20 seen ones), we
# take the caption vlp-tiny generates and the decoder's cross-attention at the step that produced
# the shape word (mean over heads and layers): the share of it that falls on the patches the
# object covers, and whether the shape word was right.

# %%
def object_patches(img) -> np.ndarray:
    a = np.asarray(img).astype(int)
    touched = np.abs(a - np.median(a.reshape(-1, 3), axis=0)).sum(-1) > 60  # (64, 64)
    return touched.reshape(8, 8, 8, 8).any(axis=(1, 3))


rng = np.random.default_rng(0)
rows = []  # (held out?, shape word right?, attention share on the object, share of patches the object covers)
for color in world.COLORS:
    for shape in world.SHAPES:
        for _ in range(DRAWS):
            _, img = one_object(shape, color, *rng.uniform(0.3, 0.7, 2))
            maps = model.attention(img)
            word = next((i for i, t in enumerate(maps.tokens) if t in world.SHAPES), None)
            if word is None:
                continue
            heat = maps.word_to_patches(word)
            on = object_patches(img)
            rows.append(((color, shape) in HELD_OUT, maps.tokens[word] == shape, heat[on].sum() / heat.sum(), on.mean()))
rows = np.array(rows, dtype=float)
for held, name in ((1, "held-out pairs"), (0, "seen pairs")):
    r = rows[rows[:, 0] == held]
    print(f"{name:15s}: shape word right {r[:, 1].mean():.0%}; attention on the object at the shape word "
          f"{r[:, 2].mean():.0%}, on {r[:, 3].mean():.0%} of the patches ({len(r)} scenes)")

# %%
fig, axes = plt.subplots(2, 3, figsize=(8, 5.6))
for row, (shape, color) in zip(axes, (("square", "yellow"), ("square", "blue"))):
    _, img = one_object(shape, color)
    maps = model.attention(img)
    row[0].imshow(img)
    row[0].set_title(f"{color} {shape}: “{' '.join(maps.tokens)}”", fontsize=8)
    for ax, i in zip(row[1:], (2, 3)):  # "a large COLOUR SHAPE": the colour and the shape word
        ax.imshow(img)
        ax.imshow(maps.word_to_patches(i), cmap="inferno", alpha=0.6, extent=(0, 64, 64, 0))
        ax.set_title(f"cross-attention at “{maps.tokens[i]}”", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A remedy, measured: hide the colour word from what the decoder reads
#
# If the decoder names the shape from the colour word before it rather than from the image, take
# the colour word away from what it *reads*. `vlp.word_dropout` does this: while it writes a
# caption the decoder reads each colour word it wrote as [UNK], so the shape that follows can
# only come from the image; and in training it reads half of the colour words as [UNK] (word
# dropout), so that [UNK] is familiar. The targets keep every word: it still learns to write the
# colour. Nothing held out is shown: the fine-tuning scenes come from the training split.
#
# A fair test needs a control: the same fine-tuning, same batches and steps, reading every word.
# Both start from vlp-tiny and train its captioning loss alone.

# %%
STEPS, BATCH = (4, 8) if QUICK else (300, 32)
torch.set_num_threads(1)
tok, vision = model.tokenizer, model.net.config.vision
colours = hiding(tok, world.COLORS)  # each colour word read as [UNK]
data = WorldBatches("train", tok, vision, seed=7)
schedule = TrainConfig(steps=STEPS, lr=2e-4, warmup=max(1, STEPS // 10), final_lr=0.1)
tuned = {}
for name, hide in [("control", None), ("word dropout", colours)]:
    torch.manual_seed(0)
    net = copy.deepcopy(model.net)
    losses, sec = fit(net, lambda m, o, b: caption_step(m, o, b, hide, share=0.5), lambda i: data.batch(i, BATCH),
                      schedule)
    tuned[name] = net.eval()
    print(f"{name:13} {STEPS} steps of {BATCH} scenes in {sec:.0f} s, caption loss {losses[0]:.3f} → {losses[-1]:.3f}")


def writer(net, reads=None):
    """Greedy captions of scenes by `net`, reading its own words as `reads` says."""
    def write(scenes):
        return captions(net, tok, scene_pixels(scenes, vision), reads)
    return write


arms = {
    "vlp-tiny as shipped": caption_counts("novel"),
    "fine-tuned, reading every word (control)": caption_counts("novel", writer(tuned["control"])),
    "word dropout, reading every word": caption_counts("novel", writer(tuned["word dropout"])),
    "word dropout, reading colours as [UNK]": caption_counts("novel", writer(tuned["word dropout"], colours)),
}
seen = {name: caption_counts("test", writer(tuned[key], reads))
        for name, key, reads in [("fine-tuned, reading every word (control)", "control", None),
                                 ("word dropout, reading colours as [UNK]", "word dropout", colours)]}
seen["vlp-tiny as shipped"] = (test_right, test_total, None)
pairs = sorted(HELD_OUT)
print(f"\n{'':42}" + "".join(f"{c + ' ' + s:>16}" for c, s in pairs) + f"{'all held out':>14}{'seen (test)':>13}")
for name, (right, total, _) in arms.items():
    held = sum(right[p] for p in pairs) / sum(total[p] for p in pairs)
    row = "".join(f"{right[p] / max(total[p], 1):16.0%}" for p in pairs)
    seen_rate = (f"{seen[name][0]['seen pairs'] / seen[name][1]['seen pairs']:13.0%}" if name in seen else f"{'':>13}")
    print(f"{name:42}{row}{held:14.0%}{seen_rate}")


# %% [markdown]
# ## What the numbers show
#
# In the full run (300 novel and 300 test scenes; the quick run's smaller counts point the same way):
#
# - **It composes unevenly.** Captions name seen pairs right 99 % of the time (594 of 598 objects
#   in test scenes, 263 of 272 in novel ones), and one held-out pair nearly as well (purple
#   triangle 98 %), but the orange circle 67 %, the green diamond 57 % and the yellow square 27
#   times of 80 (34 %).
# - **What it says instead keeps the colour and swaps the shape** for a familiar pair: a yellow
#   square is captioned "yellow circle" 52 times of 80, a green diamond "green circle" 27 times
#   of 103, an orange circle "orange square" 19 times of 69. (The count lists any named object
#   sharing the colour or the shape, so a few are other objects of the scene.)
# - **It looks at the right place.** At the step that produces the shape word, the decoder's
#   cross-attention puts 46 % of its weight on the object for held-out pairs and 47 % for seen
#   ones (the object covers 15 % of the patches): the mistake is not in finding the object.
# - **On the hand-made large yellow square ("One yellow square") the parts of this model
#   disagree**: the caption says "a large yellow square" and the ITM head gives "a large yellow
#   square" 1.000 beside "a large yellow circle" 0.005, but "what shape is the yellow object?"
#   gets "square" by only 0.53 against "circle" 0.47. Earlier vlp-tinys broke in other parts:
#   one said "circle" in every part, one read the square right in ITM and VQA and failed only in
#   the caption, one saw the square in ITM and the yes/no answer but said "circle" in the caption
#   and in "what shape is the yellow object?" (0.98), and the one before this one read it right
#   in every part ("square" 0.99). Which part breaks depends on the run, and on one drawing; the
#   scenes above show that the familiar pair still competes. This vlp-tiny was trained in 20
#   minutes (183,000 samples); the one before, in 32 (245,000), named the yellow square 74 %
#   of the time and the other held-out pairs 89–99 %: composition is still being learnt when
#   the bars are met.
# - **The remedy helps most pairs, and shows where the prior is.** Reading the colour words as
#   [UNK] after word-dropout fine-tuning names 81 % of the held-out objects in its captions,
#   against 66 % for the control fine-tuned the same way and 64 % for vlp-tiny as shipped: the
#   green diamond 87 % (control 58 %), the orange circle 94 % (61 %), at a cost of 3 points on
#   seen pairs (96 % against 99 %). The yellow square does not move (49 % against 50 % for the
#   control). So part of the error is the decoder's colour → shape habit, which hiding the colour
#   removes; the rest is not: with the colour hidden, the decoder still reads another shape from
#   the image tokens of a yellow square in half of its captions. A remedy for that has to reach
#   the image encoder, where the CLEVR systematicity literature points (more attribute diversity,
#   colour-free renders), and needs pretraining rather than a 4-minute fine-tune.
