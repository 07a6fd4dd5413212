"""Contrastive learning over every data-parallel process's batch (vlp.parallel, WorldBatches' team)."""
import dataclasses

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vlp.data import WorldBatches, build_tokenizer
from vlp.model import VLP, Batch, config_for

SEEDS = (5, 6)  # the data seeds of two processes
B = 12  # scenes per process


def team_batches(step: int = 0) -> tuple[Batch, Batch, Batch, Batch]:
    """Each process's batch in a team of two, and the same batches drawn alone."""
    tok = build_tokenizer()
    vision = config_for("tiny", len(tok), tok.eos_id).vision
    teamed = [WorldBatches("train", tok, vision, seed=s, team=SEEDS).batch(step, B) for s in SEEDS]
    alone = [WorldBatches("train", tok, vision, seed=s).batch(step, B) for s in SEEDS]
    return (*teamed, *alone)


def test_a_team_shares_its_targets_and_changes_nothing_else():
    first, second, first_alone, second_alone = team_batches()
    assert first.positives.shape == (2 * B, 2 * B)
    assert torch.equal(first.positives, second.positives)  # both processes see the same targets
    # within each process's own batch, the targets it has alone
    assert torch.equal(first.positives[:B, :B], first_alone.positives)
    assert torch.equal(first.positives[B:, B:], second_alone.positives)
    # a mention ("a red circle") or a count phrase fits scenes of the other process's batch too
    assert first.positives[:B, B:].any() or first.positives[B:, :B].any()
    for teamed, alone in ((first, first_alone), (second, second_alone)):
        for field in dataclasses.fields(Batch):
            if field.name != "positives":
                assert torch.equal(getattr(teamed, field.name), getattr(alone, field.name)), field.name


def test_a_team_needs_its_own_seed_among_its_members():
    tok = build_tokenizer()
    with pytest.raises(ValueError, match="not one of its team"):
        WorldBatches("train", tok, config_for("tiny", len(tok), tok.eos_id).vision, seed=7, team=SEEDS)


def small_net() -> VLP:
    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = config_for("micro", len(tok), tok.eos_id)
    return VLP(cfg, tok.pad_id)


def itc_gradients(net: torch.nn.Module, batch: Batch) -> tuple[float, list[torch.Tensor]]:
    loss = net(batch, objectives=("itc",))["itc"]
    loss.backward()
    return loss.item(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


def _process(rank: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(small_net(), find_unused_parameters=True)  # ITC alone
    loss, grads = itc_gradients(model, team_batches()[rank])
    if rank == 0:
        save_file({"loss": torch.tensor(loss), **{str(i): g for i, g in enumerate(grads)}}, out_file)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_learn_as_one_process_with_both_batches(tmp_path):
    """ITC in two processes of B scenes each: the loss and the gradients of one process of 2B."""
    mp.spawn(_process, args=(str(tmp_path / "init"), str(tmp_path / "out.safetensors")), nprocs=2, join=True)
    two = load_file(tmp_path / "out.safetensors")
    first, second, _, _ = team_batches()
    length = max(first.texts.shape[1], second.texts.shape[1])
    texts = torch.cat([F.pad(t, (0, length - t.shape[1])) for t in (first.texts, second.texts)])
    both = dataclasses.replace(first, pixels=torch.cat([first.pixels, second.pixels]), texts=texts)
    loss, grads = itc_gradients(small_net(), both)
    assert two["loss"].item() == pytest.approx(loss, rel=1e-5)
    for i, want in enumerate(grads):
        torch.testing.assert_close(two[str(i)], want, atol=1e-6, rtol=1e-4)
    assert sum(g.abs().sum() for g in grads) > 0
