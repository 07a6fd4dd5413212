"""The Learn tab: softmax(QKᵀ/√d_k)V worked out by hand on tables a student edits, step by step,
with the slips people make most, worked out on the same numbers."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd

from vlp.attention import WorkedExample, worked_example
from vlp.errors import BadArgument
from vlp.limits import MAX_WORKED_TOKENS, MAX_WORKED_WIDTH

from demo.inputs import PRIVATE, QUEUED, safe

CLASSIC = {"Q": [[1.0], [2.0], [3.0]], "K": [[4.0], [5.0], [6.0]], "V": [[7.0], [8.0], [9.0]]}
STEP_TITLES = ["QKᵀ", "QKᵀ / √d_k", "softmax weights A", "output AV"]


@dataclass
class WorkedSteps:
    steps: list[tuple[str, pd.DataFrame]]  # (explanation in Markdown, its table) for the 4 steps
    mistakes: str  # Markdown: the usual slips, worked out on these numbers

    def flat(self) -> list:
        """The outputs in the order of the page: text, table, …, text, table, mistakes."""
        return [x for step in self.steps for x in step] + [self.mistakes]


def _rows(table, name: str) -> np.ndarray:
    """A Dataframe's value (list of lists, DataFrame or gradio's {"headers", "data"}) as a float
    matrix; empty rows dropped. Its size is checked before any cell is read: a request of
    thousands of rows is refused at once."""
    if isinstance(table, pd.DataFrame):
        table = table.values.tolist()
    if isinstance(table, dict):
        table = table.get("data", [])
    table = table or []
    limit = f"a worked example takes at most {MAX_WORKED_TOKENS} rows (tokens) × {MAX_WORKED_WIDTH} columns (features)"
    if not isinstance(table, list):
        raise BadArgument(f"{name} must be a table: a list of rows, each a list of numbers.")
    if len(table) > MAX_WORKED_TOKENS:
        raise BadArgument(f"{name} has {len(table)} rows; {limit}.")
    if not all(isinstance(row, (list, tuple)) for row in table):
        raise BadArgument(f"{name} must be a table: a list of rows, each a list of numbers.")
    if any(len(row) > MAX_WORKED_WIDTH for row in table):
        raise BadArgument(f"{name} has a row of {max(map(len, table))} columns; {limit}.")
    rows = []
    for i, row in enumerate(table):
        cells = ["" if c is None else str(c).strip() for c in row]
        if all(c == "" for c in cells):
            continue
        out = []
        for j, c in enumerate(cells):
            try:
                out.append(float(c))
            except ValueError:
                raise BadArgument(f"{name}, row {i + 1}, column {j + 1}: {c!r} is not a number.") from None
        rows.append(out)
    if not rows:
        raise BadArgument(f"{name} is empty; give it at least one row.")
    if len({len(r) for r in rows}) != 1:
        raise BadArgument(f"{name} has rows of different lengths.")
    return np.array(rows)


def _table(matrix: np.ndarray, row: str, col: str) -> pd.DataFrame:
    df = pd.DataFrame(np.round(matrix, 4), columns=[f"{col}{j + 1}" for j in range(matrix.shape[1])])
    df.insert(0, "", [f"{row}{i + 1}" for i in range(matrix.shape[0])])
    return df


def _fmt(a, spec: str = ".4f") -> str:
    """A vector as [x, y, z]: 4 decimals, or `spec`."""
    return "[" + ", ".join(format(float(x), spec) for x in np.asarray(a, dtype=float).ravel()) + "]"


def worked(q, k, v) -> WorkedSteps:
    """Every step of softmax(QKᵀ/√d_k)V for tables Q, K, V, and the usual mistakes."""
    ex = worked_example(_rows(q, "Q"), _rows(k, "K"), _rows(v, "V"))
    t, d = ex.q.shape
    s, dv = ex.v.shape
    explanations = [
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
    return WorkedSteps(list(zip(explanations, tables)), mistakes(ex))


def mistakes(ex: WorkedExample) -> str:
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


def build_learn_tab() -> None:
    classic = worked(CLASSIC["Q"], CLASSIC["K"], CLASSIC["V"])
    with gr.Tab("Learn", id="learn"):
        gr.Markdown(
            "### Attention by hand\n"
            "$$\\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d_k}}\\right)V$$\n"
            "Edit Q, K and V (one row per token, one column per feature; Q and K share their "
            "width d_k) and press **Work it out**. The default is the three-token example with "
            "d_k = 1: Q = [1, 2, 3]ᵀ, K = [4, 5, 6]ᵀ, V = [7, 8, 9]ᵀ."
        )
        with gr.Row():
            tables = [gr.Dataframe(value=CLASSIC[name], headers=["d1"], label=label, type="array", datatype="number",
                                   interactive=True, elem_id=f"learn-{name.lower()}")
                      for name, label in (("Q", "Q (T × d_k)"), ("K", "K (S × d_k)"), ("V", "V (S × d_v)"))]
        with gr.Row():
            learn_btn = gr.Button("Work it out", variant="primary")
            reset_btn = gr.Button("Back to the three-token example")
        outputs = []
        for (text, table), title in zip(classic.steps, STEP_TITLES):
            with gr.Row(equal_height=False, elem_classes="step-row"):  # on a phone: stacked (demo.ui.CSS)
                outputs.append(gr.Markdown(text))
                outputs.append(gr.Dataframe(value=table, interactive=False, label=title, elem_classes="step-table"))
        outputs.append(gr.Markdown(classic.mistakes))

    @safe
    def on_work(q, k, v):
        return worked(q, k, v).flat()

    learn_btn.click(on_work, tables, outputs, api_name="worked_example", **QUEUED)
    reset_btn.click(lambda: [CLASSIC["Q"], CLASSIC["K"], CLASSIC["V"], *classic.flat()], None, [*tables, *outputs],
                    **PRIVATE)
