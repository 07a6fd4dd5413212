"""Evaluation on Shapes World: `python -m vlp eval --model SPEC --split test --n 500`.

Every answer can be checked against the scene it was asked about:
- VQA accuracy, overall and per question type (five questions per scene, one per type where the
  scene allows it);
- caption accuracy (the caption parses back to exactly the scene, docs/world.md's rule), and
  BLEU-4 / CIDEr against the canonical captions (pycocoevalcap's scorers);
- text → image: P@1 (the top image holds what the canonical caption names) and R@5 (the
  caption's own image is in the top five); image → text R@1 (the top caption is true of the
  image);
- ITM accuracy on matched pairs and on near-miss pairs (one detail changed).

And in people's words (vlp's extension of the world's language, docs/world.md), with the
canonical figures above defined as before:
- VQA per family of phrasings (one question per family on each of the first NATURAL_SCENES
  scenes; each answer is scored whole, which costs more), `natural_vqa_by_family`;
  a question the model cannot read (unknown words) counts as wrong;
- relations per direction, `relation_by_direction`: "is the red circle below the blue square?"
  for every ordered pair of objects and each of the four directions on the first
  RELATION_SCENES scenes, in one wording (the canonical "left of"), as balanced accuracy (the
  mean of the accuracies on yes and on no: always "no" scores 0.5), so no direction hides
  behind another's share or behind the answer most pairs have.
- ITM on paraphrases with synonyms and count phrases, true and near miss, `itm_paraphrase_*`.
"""
from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict

import numpy as np

from vlp import world
from vlp.errors import BadText
from vlp.protocol import Model

QUESTIONS_PER_SCENE = 5
NATURAL_SCENES = 200  # scenes asked in people's phrasings: one question per family each (~180 a family)
RELATION_SCENES = 100  # scenes asked every relation between every ordered pair (~280 questions a direction)
RELATION_WORDS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}


def evaluate(model: Model, split: str = "test", n: int = 500, batch_size: int = 100, headline: bool = False) -> dict:
    """All metrics for `model` on the first `n` scenes of `split`, as a flat-ish dict; with
    `headline`, only those of the canonical language (the bars), for a quick look."""
    scenes = world.scenes(split, n)
    images = [world.render(s) for s in scenes]
    captions = [world.caption(s) for s in scenes]
    out: dict = {"split": split, "scenes": n}
    can = model.capabilities
    if can.answer:
        out |= _vqa(model, scenes, images, batch_size)
        if not headline:
            out |= _natural_vqa(model, scenes[:NATURAL_SCENES], images, batch_size)
            out |= _relations_by_direction(model, scenes[:RELATION_SCENES], images, batch_size)
    if can.caption:
        out |= _captioning(model, scenes, images, captions, batch_size)
    if can.embed:
        out |= _retrieval(model, scenes, images, captions)
    if can.match:
        out |= _matching(model, scenes, images, captions, batch_size)
        if not headline:
            out |= _paraphrase_matching(model, scenes, images, batch_size)
    return out


def quick_validation(model, n: int = 200) -> dict:
    """The headline numbers on the val split, for the training loop."""
    m = evaluate(model, "val", n, headline=True)
    return {k: m[k] for k in ("vqa_accuracy", "caption_accuracy", "t2i_p_at_1", "itm_accuracy") if k in m}


def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _vqa(model, scenes, images, batch_size) -> dict:
    qs = []  # (scene index, question, answer, type)
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([7, i])
        types = world.question_types(scene)
        for qtype in rng.permutation(types)[:QUESTIONS_PER_SCENE]:
            q, a, t = world.sample_question(scene, rng, str(qtype))
            qs.append((i, q, a, t))
    predicted = []
    for chunk in _batches(qs, batch_size):
        predicted += model.answer_many([images[i] for i, *_ in chunk], [q for _, q, _, _ in chunk])
    per_type = defaultdict(list)
    for (_, _, a, t), p in zip(qs, predicted):
        per_type[t].append(p.strip() == a)
    right = [r for rs in per_type.values() for r in rs]
    return {
        "vqa_accuracy": float(np.mean(right)),
        "vqa_questions": len(right),
        "vqa_by_type": {t: float(np.mean(rs)) for t, rs in sorted(per_type.items())},
    }


def _readable(call, items: list, batch_size: int, refused) -> list:
    """`call(chunk)` over chunks of items; a chunk with a text the model cannot read is retried
    item by item, and each refused item gets `refused`."""
    out = []
    for chunk in _batches(items, batch_size):
        try:
            out += list(call(chunk))
        except BadText:
            for item in chunk:
                try:
                    out += list(call([item]))
                except BadText:
                    out.append(refused)
    return out


def _ask(model, images, qs: list[tuple], batch_size: int) -> list[str | None]:
    """The model's answers to rows (image index, question, …); None where it cannot read one."""
    return _readable(lambda chunk: model.answer_many([images[i] for i, *_ in chunk], [q for _, q, *_ in chunk]),
                     qs, batch_size, refused=None)


def _natural_vqa(model, scenes, images, batch_size) -> dict:
    qs = []  # (scene index, question, answer, family)
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([13, i])
        for family in world.FAMILIES:
            canonical = world.sample_question(scene, rng)[:2]
            made = world.sample_phrased(scene, rng, family, canonical)
            if made is not None:
                qs.append((i, *made, family))
    predicted = _ask(model, images, qs, batch_size)
    per_family = defaultdict(list)
    for (_, _, a, f), p in zip(qs, predicted):
        per_family[f].append(p == a)
    return {
        "natural_vqa_accuracy": float(np.mean([p == a for (_, _, a, _), p in zip(qs, predicted)])),
        "natural_vqa_questions": len(qs),
        "natural_vqa_by_family": {f: float(np.mean(per_family[f])) for f in world.FAMILIES if per_family[f]},
    }


def _relations_by_direction(model, scenes, images, batch_size) -> dict:
    qs = []  # (scene index, question, answer, direction)
    for i, scene in enumerate(scenes):
        for a, b in itertools.permutations(scene.objects, 2):
            for direction, test in world.RELATIONS.items():
                question = f"is the {a.color} {a.shape} {RELATION_WORDS[direction]} the {b.color} {b.shape}?"
                qs.append((i, question, "yes" if test(a, b) else "no", direction))
    predicted = _ask(model, images, qs, batch_size)
    right = defaultdict(list)  # (direction, answer) → right or not
    for (_, _, a, d), p in zip(qs, predicted):
        right[d, a].append(p is not None and p.strip() == a)
    return {"relation_by_direction": {d: float(np.mean([np.mean(right[d, a]) for a in ("yes", "no") if right[d, a]]))
                                      for d in world.RELATIONS if right[d, "yes"] or right[d, "no"]}}


def _captioning(model, scenes, images, captions, batch_size) -> dict:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    generated = []
    for chunk in _batches(images, batch_size):
        generated += model.caption_many(chunk)
    correct = [world.caption_correct(g, s) for g, s in zip(generated, scenes)]
    refs = {i: [c] for i, c in enumerate(captions)}
    hyps = {i: [g or "[empty]"] for i, g in enumerate(generated)}
    bleu, _ = Bleu(4).compute_score(refs, hyps, verbose=0)
    cider, _ = Cider().compute_score(refs, hyps)
    wrong = [(c, g) for c, g, ok in zip(captions, generated, correct) if not ok][:5]
    return {"caption_accuracy": float(np.mean(correct)), "bleu4": float(bleu[3]), "cider": float(cider),
            "caption_mistakes": [{"truth": c, "said": g} for c, g in wrong]}


def _retrieval(model, scenes, images, captions) -> dict:
    img = model.embed_images(images)
    txt = model.embed_texts(captions)
    sim = txt @ img.T  # (queries, images)
    order = np.argsort(-sim, axis=1)
    p_at_1 = np.mean([world.holds(captions[q], scenes[order[q, 0]]) for q in range(len(captions))])
    r_at_5 = np.mean([q in order[q, :5] for q in range(len(captions))])
    best_text = np.argmax(sim, axis=0)  # per image, the best caption
    i2t = np.mean([world.caption_correct(captions[best_text[i]], scenes[i]) for i in range(len(scenes))])
    return {"t2i_p_at_1": float(p_at_1), "t2i_r_at_5": float(r_at_5), "i2t_r_at_1": float(i2t)}


def _matching(model, scenes, images, captions, batch_size) -> dict:
    rng = np.random.default_rng(11)
    wrong = [world.near_miss(s, "full", rng) for s in scenes]
    pairs = [(im, c, 1) for im, c in zip(images, captions)] + [(im, w, 0) for im, w in zip(images, wrong)]
    probs = []
    for chunk in _batches(pairs, batch_size):
        probs += list(model.match_pairs([p[0] for p in chunk], [p[1] for p in chunk]))
    labels = np.array([p[2] for p in pairs])
    said = np.array(probs) > 0.5
    return {
        "itm_accuracy": float(np.mean(said == labels)),
        "itm_matched_accuracy": float(np.mean(said[labels == 1])),
        "itm_near_miss_accuracy": float(np.mean(~said[labels == 0])),
    }


def _paraphrase_matching(model, scenes, images, batch_size) -> dict:
    rng = np.random.default_rng(17)
    pairs = []  # (image, text, true)
    for image, scene in zip(images, scenes):
        pairs += [(image, world.paraphrase(scene, rng, synonyms=True), 1), (image, world.count_phrase(scene, rng), 1),
                  (image, world.near_miss(scene, "paraphrase", rng), 0), (image, world.near_miss(scene, "count", rng), 0)]
    probs = np.array(_readable(lambda chunk: model.match_pairs([p[0] for p in chunk], [p[1] for p in chunk]),
                               pairs, batch_size, refused=np.nan))
    labels = np.array([p[2] for p in pairs])
    right = np.where(np.isnan(probs), False, (probs > 0.5) == labels)  # a refused text is wrong
    return {
        "itm_paraphrase_accuracy": float(np.mean(right)),
        "itm_paraphrase_true_accuracy": float(np.mean(right[labels == 1])),
        "itm_paraphrase_near_miss_accuracy": float(np.mean(right[labels == 0])),
    }


def add_arguments(parser: argparse.ArgumentParser, command_name: str = "eval") -> None:
    parser.add_argument("--model", default="vlp-tiny", help="model spec (default: the embedded vlp-tiny)")
    parser.add_argument("--split", default="test", choices=world.SPLITS)
    parser.add_argument("--n", type=int, default=500, help="number of scenes")
    parser.add_argument("--device", default="auto")


def main(args, command_name: str = "eval") -> int:
    import vlp

    model = vlp.load(args.model, args.device)
    print(json.dumps(evaluate(model, args.split, args.n), indent=2))
    return 0
