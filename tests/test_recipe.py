"""The CPU recipe: its step gives the losses of today's step, it learns, its schedule resumes exactly,
and `--recipe` names it on the command line."""
import argparse
import json
import math
import re
from dataclasses import replace

import pytest
import torch

from benchmarks.train import unpacked_rows
import vlp
from vlp import train as train_module
from vlp.data import WorldBatches, build_tokenizer
from vlp.errors import BadArgument
from vlp.layers import Attention, use_fused_attention
from vlp import model as model_module
from vlp.model import VLP, config_for
from vlp.packing import PACK_LENGTH, pack
from vlp.text import at_end_token
from vlp.schedule import PLAN_EVERY, decay_start, lr_at, planned_steps
from vlp.train import RECIPES, TrainConfig, config_from, prepare_for_training, train, train_step, training_data

CPU = torch.device("cpu")


def small_net(seed=0):
    torch.manual_seed(seed)
    tok = build_tokenizer()
    cfg = config_for("tiny", len(tok), tok.eos_id)
    for tower in (cfg.vision, cfg.text, cfg.decoder):
        tower.width, tower.layers, tower.heads = 32, 1, 2
    cfg.vision.embed_dim = cfg.text.embed_dim = 16
    cfg.decoder.image_width = 32
    return VLP(cfg, tok.pad_id), tok


def losses_of(net, batch, itm_negatives=3, seed=0):
    torch.manual_seed(seed)  # the same hard negatives drawn
    return {k: v.item() for k, v in net(batch, itm_negatives=itm_negatives).items()}


@pytest.fixture(scope="module")
def batch():
    tok = build_tokenizer()
    return WorldBatches("train", tok, config_for("tiny", len(tok), tok.eos_id).vision, seed=3).batch(0, 24)


def losses_and_gradients(net, batch, itm_negatives=3):
    torch.manual_seed(0)
    losses = net(batch, itm_negatives=itm_negatives)
    total = sum(v for k, v in losses.items() if k != "itm_acc")
    grads = torch.autograd.grad(total, list(net.parameters()))
    return {k: v.item() for k, v in losses.items()}, grads


def test_explicit_attention_gives_the_fused_losses_and_gradients(batch):
    net, _ = small_net()
    fused, fused_grads = losses_and_gradients(net, batch)
    use_fused_attention(net, False)
    assert not any(m.fused for m in net.modules() if isinstance(m, Attention))
    explicit, explicit_grads = losses_and_gradients(net, batch)
    assert explicit == pytest.approx(fused, abs=1e-5)
    for g, ge in zip(fused_grads, explicit_grads):
        torch.testing.assert_close(ge, g, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("itm_negatives", [3, 1])
@pytest.mark.parametrize("before", ["copies", "shared"])
def test_packed_texts_give_the_losses_of_one_text_per_row(batch, monkeypatch, itm_negatives, before):
    """Captions, questions and ITM pairs, each image's packed in one sequence that reads its keys
    and values, projected once per step: the losses and gradients of one text per row, each row
    with its own copy of the image tokens ("copies") or reading the shared projection ("shared")."""
    net, _ = small_net()
    real_project, real_forward = net.decoder.project_images, net.decoder.forward
    projections, calls = [], []
    step = lambda: losses_and_gradients(net, batch, itm_negatives)
    with unpacked_rows(net, before):  # the steps before packing, as `bench train` times them
        rows, rows_grads = step()
    monkeypatch.setattr(net.decoder, "project_images", lambda tokens: projections.append(1) or real_project(tokens))
    monkeypatch.setattr(net.decoder, "forward", lambda *a, **kw: calls.append(kw) or real_forward(*a, **kw))
    packed, packed_grads = step()
    assert len(projections) == 1 and len(calls) == 1  # one projection, one pass for the three objectives
    assert calls[0]["texts"] is not None and calls[0]["caches"] is not None
    assert packed == pytest.approx(rows, abs=1e-5)
    for g, gr in zip(packed_grads, rows_grads):
        torch.testing.assert_close(g, gr, atol=1e-5, rtol=1e-4)


def test_pack_puts_each_images_texts_one_after_another():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [3, 4, 5, 6], [7, 0, 0, 0]])
    images = torch.tensor([1, 0, 1, 1])
    packed = pack(ids, ids != 0, images, pad_id=0)
    assert packed.images.tolist() == [0, 1]
    assert packed.ids.tolist() == [[8, 9, 0, 0, 0, 0, 0, 0], [5, 6, 7, 3, 4, 5, 6, 7]]
    assert packed.positions.tolist() == [[0, 1, 0, 0, 0, 0, 0, 0], [0, 1, 2, 0, 1, 2, 3, 0]]
    assert packed.texts.tolist() == [[1, 1, -1, -1, -1, -1, -1, -1], [0, 0, 0, 2, 2, 2, 2, 3]]
    torch.testing.assert_close(packed.unpack(packed.ids[..., None])[..., 0], ids)  # and back
    # at most `length` tokens a sequence: image 1's texts go on in a second one
    short = pack(ids, ids != 0, images, pad_id=0, length=5)
    assert short.images.tolist() == [0, 1, 1]
    assert short.ids.tolist() == [[8, 9, 0, 0, 0], [5, 6, 7, 0, 0], [3, 4, 5, 6, 7]]
    torch.testing.assert_close(short.unpack(short.ids[..., None])[..., 0], ids)


@pytest.mark.parametrize("length", [PACK_LENGTH, 24])
def test_each_packed_text_gets_the_result_it_gets_alone(batch, monkeypatch, length):
    """ITM scores, the captions' loss and the questions' states through packed sequences (of any
    length) are those of one plain pass of the decoder over the padded texts, one per row."""
    net, _ = small_net()
    real = net.decoder.forward
    monkeypatch.setattr(model_module, "pack", lambda *args: pack(*args, length=length))
    with torch.no_grad():
        tokens = net.encode_image(batch.pixels).tokens
        plain = real(batch.texts, tokens)
        ends = at_end_token(plain.hidden, batch.texts, net.config.text.eos_id)
        torch.testing.assert_close(net.match_logits(batch.texts, tokens), net.itm_head(ends))
        targets = batch.captions[:, 1:].masked_fill(batch.captions[:, 1:] == net.pad_id, -100)
        logits = real(batch.captions[:, :-1], tokens).logits
        plain_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        torch.testing.assert_close(net.lm_loss(batch.captions, tokens, batch.captions != net.pad_id), plain_loss)
        # several texts an image, as in training: each image's questions, packed
        rows = batch.qa_images
        by_row = net.decoder(batch.qa, tokens[rows]).hidden * (batch.qa != net.pad_id)[..., None]
        hidden, _ = net.read(batch.qa, batch.qa != net.pad_id, tokens, rows)
        torch.testing.assert_close(hidden, by_row, atol=1e-5, rtol=1e-4)
    packed = pack(batch.qa, batch.qa != net.pad_id, rows, net.pad_id, length)
    # one sequence an image, unless `length` cuts it: then the image's texts go on in the next
    assert (len(packed.images) == len(tokens)) == (length == PACK_LENGTH)
    assert sorted(packed.images.unique().tolist()) == list(range(len(tokens)))


def test_the_recipe_step_in_bf16_gives_the_float32_losses(batch, monkeypatch):
    """bf16 autocast with the explicit attention path: the same losses to bf16's precision."""
    net, _ = small_net()
    cfg = RECIPES["cpu"]
    drawn, multinomial = [], torch.multinomial

    def recorded(weights, n):  # the hard negatives fp32 draws, drawn again in bf16: its similarities differ
        drawn.append(multinomial(weights, n))
        return drawn[-1]

    monkeypatch.setattr(torch, "multinomial", recorded)
    full = losses_of(net, batch, cfg.itm_negatives)
    assert drawn  # the recipe's step draws hard negatives
    replay = iter(list(drawn))
    monkeypatch.setattr(torch, "multinomial", lambda weights, n: next(replay))
    prepare_for_training(net, CPU, cfg)
    with train_module.training_autocast(CPU, cfg):
        half = losses_of(net, batch, cfg.itm_negatives)
        assert net.encode_image(batch.pixels).tokens.dtype == torch.bfloat16  # the lever is on
    for k in ("itc", "itm", "caption", "vqa"):
        assert half[k] == pytest.approx(full[k], rel=5e-3), k  # measured: ≤ 0.1 %


def test_one_itm_negative_per_image_keeps_the_positives_and_the_near_misses(batch, monkeypatch):
    net, _ = small_net()
    seen = []
    real = net.itm_pairs
    monkeypatch.setattr(net, "itm_pairs", lambda *args: seen.append(real(*args)) or seen[-1])
    torch.manual_seed(0)
    net(batch, itm_negatives=1)
    (ids, _, _), b = seen[-1], len(batch.texts)
    assert len(ids) == 2 * b  # two decoder rows per image: its text, one negative
    width = batch.texts.shape[1]
    torch.testing.assert_close(ids[:b, :width], batch.texts)  # the positives: each image's own text
    near = ids[b::2][:, : batch.wrong_texts.shape[1]]  # even images: their near miss
    torch.testing.assert_close(near, batch.wrong_texts[::2])
    # today's rows: B positives, a hard negative text and image per image that has one, B near misses
    torch.manual_seed(0)
    net(batch, itm_negatives=3)
    assert len(seen[-1][0]) > 3 * b
    with pytest.raises(ValueError):
        net(batch, itm_negatives=2)


def asked(data: WorldBatches, step: int, pattern: str) -> float:
    """The share of the questions of the batch at `step` that match `pattern`."""
    tok = data.tok
    questions = [tok.decode(row[: row.index(tok.sep_id)]) for row in data.batch(step, 256).qa.tolist()]
    return sum(bool(re.search(pattern, q)) for q in questions) / len(questions)


def test_the_recipe_asks_where_things_are_first_then_less():
    tok = build_tokenizer()
    vision = config_for("tiny", len(tok), tok.eos_id).vision
    recipe = RECIPES["cpu"]
    data = training_data(recipe, tok, vision)
    plain = WorldBatches("train", tok, vision, seed=0, question_pairs=recipe.question_pairs)
    first, after = asked(data, recipe.where_steps - 1, "^where is"), asked(data, recipe.where_steps, "^where is")
    assert first > 0.35 and 0.1 < after < 0.25, (first, after)  # all phrased non-relations, then a quarter
    assert asked(plain, recipe.where_steps - 1, "^where is") < 0.08  # one family in eleven


def test_relation_share_sets_how_often_the_second_question_asks_a_relation():
    tok = build_tokenizer()
    vision = config_for("tiny", len(tok), tok.eos_id).vision
    words = r"\b(left|right|above|over|below|under|next to)\b"
    never, always = (asked(WorldBatches("train", tok, vision, seed=0, relation_share=r), 0, words) for r in (0.0, 1.0))
    assert always > never + 0.2, (never, always)


def test_a_short_run_of_the_cpu_recipe_lowers_the_loss(tmp_path):
    cfg = replace(RECIPES["cpu"], steps=100, batch_size=32, warmup=5)
    net, _ = small_net()
    data = WorldBatches("train", build_tokenizer(), net.config.vision, seed=5)
    fixed = data.batch(10**6, 32)
    prepare_for_training(net, CPU, cfg)
    optimizer = train_module.new_optimizer(net, cfg, CPU)
    net.train()
    before = losses_of(net, fixed, 1)
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        train_step(net, optimizer, data.batch(step, cfg.batch_size), CPU, cfg)
    after = losses_of(net, fixed, 1)
    assert after["caption"] < 0.6 * before["caption"]
    assert after["vqa"] < 0.6 * before["vqa"]
    assert after["itc"] < before["itc"]


def test_the_schedule_warms_up_then_ends_at_its_final_rate():
    cfg = RECIPES["cpu"]
    rates = [lr_at(s, cfg) for s in range(cfg.steps)]
    assert rates[0] < rates[cfg.warmup // 2] < rates[cfg.warmup - 1] == pytest.approx(cfg.lr)
    assert max(rates) == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(rates[cfg.warmup:], rates[cfg.warmup + 1:]))  # never rises after warm-up
    assert rates[-1] == pytest.approx(cfg.lr * cfg.final_lr, abs=1e-9)


def test_a_decay_share_holds_the_rate_then_decays_to_the_same_end():
    cfg = replace(RECIPES["cpu"], decay_share=0.25)
    rates = [lr_at(s, cfg) for s in range(cfg.steps)]
    decay_start = cfg.warmup + round(0.75 * (cfg.steps - cfg.warmup))
    assert rates[cfg.warmup - 1 : decay_start] == pytest.approx([cfg.lr] * (decay_start - cfg.warmup + 1))
    assert all(a > b for a, b in zip(rates[decay_start:], rates[decay_start + 1:]))
    assert rates[-1] == pytest.approx(cfg.lr * cfg.final_lr, abs=1e-9)
    whole, floor = replace(cfg, decay_share=1.0), cfg.lr * cfg.final_lr  # 1.0: cosine from the end of warm-up
    cosine = [floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * (s - cfg.warmup) / (cfg.steps - 1 - cfg.warmup)))
              for s in range(cfg.warmup, cfg.steps)]
    assert [lr_at(s, whole) for s in range(cfg.warmup, cfg.steps)] == pytest.approx(cosine)


def test_the_recipe_resumes_exactly(tmp_path):
    """A recipe run stopped half-way and resumed ends with the weights of a straight run."""
    cfg = replace(RECIPES["cpu"], steps=6, batch_size=8, warmup=2, eval_every=3, eval_scenes=4, cpu_processes=1,
                  minutes=0.0)
    straight = train(cfg, tmp_path / "a", "cpu", final_eval=0, progress=False)
    train(replace(cfg, steps=3), tmp_path / "b", "cpu", final_eval=0, progress=False)
    resumed = train(cfg, tmp_path / "b", "cpu", resume=True, final_eval=0, progress=False)
    a, b = vlp.load(str(straight), device="cpu"), vlp.load(str(resumed), device="cpu")
    for (k, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        torch.testing.assert_close(va, vb, atol=5e-4, rtol=0, msg=k)


def test_a_checkpoints_clock_counts_the_validation_before_it(tmp_path):
    """A resumed time budget goes on from the clock in the checkpoint: it must not lose the
    validation that ran at the checkpoint's step."""
    cfg = TrainConfig(size="micro", steps=2, batch_size=4, warmup=1, eval_every=2, eval_scenes=8)
    train(cfg, tmp_path / "run", "cpu", final_eval=0, progress=False)
    validated = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert "val" in validated and state["step"] == validated["step"] == 2
    assert state["elapsed_s"] >= validated["time_s"] - 0.05  # time_s is rounded to 0.1 s


def test_a_time_budget_plans_the_steps_from_the_step_time_until_the_decay_begins():
    cfg = replace(RECIPES["cpu"], minutes=20, steps=1500)  # decay from step 1,150
    assert planned_steps(cfg, 200, seconds_left=600, step_seconds=0.5) == 1400  # 1,200 more steps
    assert planned_steps(cfg, 200, seconds_left=600, step_seconds=2.0) == 500  # a slower machine: fewer
    assert planned_steps(cfg, 90, seconds_left=-5, step_seconds=2.0) == 91  # out of time in the warm-up: end now
    assert planned_steps(cfg, decay_start(cfg), seconds_left=600, step_seconds=2.0) == 1500  # the decay runs whole
    # the budget shrinks while the rate is held: the decay starts now, it does not jump down the cosine
    late = planned_steps(cfg, 1000, seconds_left=100, step_seconds=1.0)
    assert decay_start(replace(cfg, steps=late)) == 1000
    assert lr_at(999, replace(cfg, steps=late)) == lr_at(1000, replace(cfg, steps=late)) == cfg.lr


def test_a_run_with_a_time_budget_stops_by_the_clock_at_the_end_of_its_decay(tmp_path):
    cfg = TrainConfig(size="micro", steps=1000, batch_size=4, warmup=3, decay_share=0.5, final_lr=0.0,
                      eval_every=10**6, eval_scenes=4, minutes=0.1)
    final = train(cfg, tmp_path / "run", "cpu", final_eval=0, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = json.loads((final / "metrics.json").read_text())["train"]["steps"]
    assert PLAN_EVERY < steps < 1000  # planned from the clock, not the steps given
    assert [r["lr"] for r in rows if "lr" in r][-1] == 0.0  # and the decay ended with the run
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["steps"] == steps
    again = train(cfg, tmp_path / "run", "cpu", resume=True, final_eval=0, progress=False)  # resumes the plan
    assert json.loads((again / "metrics.json").read_text())["train"]["steps"] == steps


def test_cuda_keeps_the_fused_attention():
    """The explicit path is for bf16 on the CPU only; CUDA's fused bf16 kernels are fast."""
    net, _ = small_net()
    prepare_for_training(net, torch.device("cuda"), RECIPES["cpu"])
    assert all(m.fused for m in net.modules() if isinstance(m, Attention))
    prepare_for_training(net, CPU, RECIPES["cpu"])
    assert not any(m.fused for m in net.modules() if isinstance(m, Attention))
    prepare_for_training(net, CPU, TrainConfig())
    assert all(m.fused for m in net.modules() if isinstance(m, Attention))


def parse(argv):
    parser = argparse.ArgumentParser()
    train_module.add_arguments(parser)
    return parser.parse_args(argv)


def test_recipe_flag_names_a_recipe_and_flags_override_it():
    assert config_from(parse(["--out", "x", "--device", "cpu"])) == TrainConfig()
    assert config_from(parse(["--out", "x", "--recipe", "cpu", "--device", "cpu"])) == RECIPES["cpu"]
    cfg = config_from(parse(["--out", "x", "--recipe", "cpu", "--steps", "7", "--lr", "0.01", "--device", "cpu",
                             "--processes", "1", "--threads", "2"]))
    assert cfg == replace(RECIPES["cpu"], steps=7, lr=0.01, cpu_processes=1, threads=2, minutes=0.0)  # steps: no budget


def test_loss_weights_set_the_named_losses_and_keep_the_others():
    cfg = config_from(parse(["--out", "x", "--recipe", "cpu", "--loss-weights", "caption=4, itc=0", "--device", "cpu"]))
    assert cfg.loss_weights == RECIPES["cpu"].loss_weights | {"caption": 4.0, "itc": 0.0}
    for bad in ("captions=2", "caption=two", "vqa=-1", "vqa=inf", "itc=0,itm=0,caption=0,vqa=0"):
        with pytest.raises(BadArgument, match="--loss-weights"):
            config_from(parse(["--out", "x", "--loss-weights", bad, "--device", "cpu"]))


def test_minutes_replace_steps_and_not_both(monkeypatch):
    assert config_from(parse(["--out", "x", "--recipe", "cpu", "--minutes", "20", "--device", "cpu"])).minutes == 20
    budget = replace(RECIPES["cpu"], minutes=20)
    monkeypatch.setitem(RECIPES, "cpu", budget)
    assert config_from(parse(["--out", "x", "--recipe", "cpu", "--steps", "9", "--device", "cpu"])).minutes == 0
    with pytest.raises(BadArgument, match="--steps or --minutes"):
        config_from(parse(["--out", "x", "--minutes", "20", "--steps", "10", "--device", "cpu"]))
    with pytest.raises(BadArgument, match="positive"):
        config_from(parse(["--out", "x", "--minutes", "-1", "--device", "cpu"]))
    assert config_from(parse(["--out", "x", "--minutes", "0", "--steps", "10", "--device", "cpu"])).steps == 10


def test_the_cpu_recipe_starts_its_processes_with_torchrun(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(train_module, "launch", lambda processes, argv: calls.append((processes, argv)) or 0)
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("trained in the launching process"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["--recipe", "cpu", "--out", str(tmp_path), "--device", "cpu"]
    monkeypatch.setattr("sys.argv", ["vlp", "train", *argv])
    assert train_module.main(parse(argv)) == 0
    assert calls == [(RECIPES["cpu"].cpu_processes, ["train", *argv])]


def test_fit_trains_any_model_at_the_schedules_rates():
    """`fit`, the loop the lessons train their baselines with: every step at lr_at(step), and a
    model that is not vlp's learns."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    truth = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    xs = [torch.randn(32, 4) for _ in range(60)]
    rates = []

    def step(m, optimizer, x):
        rates.append(optimizer.param_groups[0]["lr"])
        loss = ((m(x) - x @ truth.T) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    cfg = TrainConfig(steps=60, lr=0.3, warmup=6, final_lr=0.1, weight_decay=0.0)
    losses, seconds = train_module.fit(model, step, lambda i: xs[i], cfg)
    assert rates == pytest.approx([lr_at(i, cfg) for i in range(60)])
    assert losses[-1] < 0.05 * losses[0] and seconds > 0
    assert not model.training  # handed back ready to evaluate
