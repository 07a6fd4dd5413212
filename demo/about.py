"""The About tab (the model's card: what it is, what it was trained on, its measured metrics,
what it cannot do) and the page header's line on which model is serving."""
from __future__ import annotations

from collections import OrderedDict

import gradio as gr

from vlp.protocol import CAPTIONER, EMBEDDER, REAL_WEIGHTS

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
    "natural_vqa_accuracy": "VQA accuracy, people's phrasings",
    "natural_vqa_questions": "questions in people's phrasings",
    "natural_vqa_by_family": "VQA accuracy, phrasing",
    "relation_by_direction": "relations, every pair (balanced accuracy)",
    "itm_paraphrase_accuracy": "ITM accuracy, paraphrases",
    "itm_paraphrase_true_accuracy": "ITM accuracy, true paraphrases",
    "itm_paraphrase_near_miss_accuracy": "ITM accuracy, paraphrased near misses",
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
             f"**Fingerprint:** `{model.fingerprint}`", ""]
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
              "", "On a Hugging Face Space, which takes no flags, set them as the Space's variables (Settings → "
              "Variables): `VLP_MODEL` (the model), `VLP_CAPTIONER` (a second model that writes captions and "
              "answers) and `VLP_GALLERY` (the search gallery: `world:N` or a folder), e.g.", "",
              f"```\nVLP_MODEL={EMBEDDER}\nVLP_CAPTIONER={CAPTIONER}\n```",
              "", "A Shapes World model only knows shapes: on a photo it still answers in circles and squares, and "
              "the demo says so beside every result."]
    return "\n".join(lines)


def model_line(model) -> str:
    """One line for the page header: which model is serving and what it can do."""
    can = model.capabilities
    serves = [name for name, able in (("captions", can.caption), ("answers", can.answer), ("search", can.embed)) if able]
    return f"Model **{model.spec}** (`{model.fingerprint}`) · serves " + (", ".join(serves) or "attention only")


LARGE_TEXT = "(on) => document.documentElement.classList.toggle('vlp-large', on)"  # demo.ui.CSS sizes it


def build_header(model) -> gr.Button:
    """The page's title, the model line, a "Large text" switch (for a projector; it runs in the
    browser only) and the button that opens the About tab, which is returned for `demo.ui` to wire."""
    with gr.Row(elem_id="header-row", equal_height=False):
        gr.Markdown("# vlp — caption, ask, search, and see where the model looks\n" + model_line(model),
                    elem_id="header")
        with gr.Column(scale=0, min_width=180, elem_id="header-tools"):
            about = gr.Button("About this model", size="sm", elem_id="about-btn")
            large = gr.Checkbox(False, label="Large text (projector)", container=False, elem_id="large-text")
    large.change(None, [large], None, js=LARGE_TEXT, api_visibility="private", queue=False)
    return about


def build_about_tab(model) -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(card_markdown(model), elem_id="about-card")
