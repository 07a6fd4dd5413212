"""Every lesson in lessons/ (NN_*.py, found by name) runs as a notebook in its quick mode, so none
can rot: a cell that raises, or an assertion of the lesson's own result that fails, fails here.

Marked slow (about a minute each): `make test-fast` skips them, CI's `make test` runs them.
"""
from __future__ import annotations

import pytest

from lessons.run import execute, lessons


def test_lessons_are_found():
    assert lessons(), "no lessons/NN_*.py found"


@pytest.mark.slow
@pytest.mark.parametrize("source", lessons(), ids=lambda p: p.stem)
def test_lesson_runs_quick(source):
    nb = execute(source, quick=True, cell_timeout=600)  # raises on the first failing cell
    assert any(cell.cell_type == "markdown" for cell in nb.cells), "a lesson tells what it shows in prose"


def test_a_loss_weighted_zero_is_not_computed():
    """Lessons train with objectives switched off (TrainConfig.loss_weights): an objective
    weighted 0 is not computed, and the towers only it uses get no gradient."""
    import torch

    from vlp.data import WorldBatches, build_tokenizer
    from vlp.model import VLP, config_for
    from vlp.train import TrainConfig, new_optimizer, train_step

    torch.manual_seed(0)
    tok = build_tokenizer()
    net = VLP(config_for("tiny", len(tok), tok.eos_id), pad_id=tok.pad_id)
    batch = WorldBatches("train", tok, net.config.vision).batch(0, 8)
    cpu = torch.device("cpu")
    for weights, computed, untouched in [
        ({"itc": 1.0, "itm": 0.0, "caption": 0.0, "vqa": 0.0}, {"itc"}, ["decoder", "itm_head"]),
        ({"itc": 0.0, "itm": 1.0, "caption": 0.0, "vqa": 0.0}, {"itm", "itm_acc"}, ["text", "logit_scale"]),
        ({"itc": 0.0, "itm": 0.0, "caption": 1.0, "vqa": 1.0}, {"caption", "vqa"}, ["text", "itm_head"]),
    ]:
        cfg = TrainConfig(loss_weights=weights)
        losses = train_step(net, new_optimizer(net, cfg, cpu), batch, cpu, cfg)
        assert set(losses) == computed
        for name, p in net.named_parameters():
            if any(name.startswith(u) for u in untouched):
                assert p.grad is None, name
        assert net.visual.conv1.weight.grad is not None
