"""The lessons' baselines: the classic late-fusion model (vlp/baselines.py) and the prefix LM
(vlp/prefix_lm.py) — shapes, probabilities, learning, causality, cache, fair sizes."""
import pytest
import torch
import torch.nn.functional as F

from vlp import world
from vlp.baselines import (
    CODES,
    FrozenTowers,
    additive_gap,
    attribute_targets,
    image_step,
    match_accuracy,
    match_pairs,
    match_step,
    new_classic,
    text_step,
    vlp_match,
    vlp_match_step,
)
from vlp.data import WorldBatches, build_tokenizer
from vlp.generate import generate
from vlp.model import VLP, config_for
from vlp.prefix_lm import PrefixLM, answers, fusion_losses, fusion_step, prefix_config_for
from vlp.train import TrainConfig, fit

TOK = build_tokenizer()
VISION = config_for("tiny", len(TOK), TOK.eos_id).vision


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A ResNet step on a shared 2-core machine is ~10× slower with two OpenMP threads than with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch():
    return WorldBatches("train", TOK, VISION, seed=3).batch(0, 8)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_classic_shapes_and_the_match_score_is_a_probability(batch):
    torch.manual_seed(0)
    model = new_classic(TOK).eval()
    assert model.encode_image(batch.pixels).shape == (8, 512)
    assert model.encode_text(batch.texts).shape == (8, 128)
    p = model.match(batch.pixels, batch.texts)
    assert p.shape == (8,)
    assert ((p > 0) & (p < 1)).all()
    assert torch.allclose(p, model.match_logits(batch.pixels, batch.texts).sigmoid())


def test_attribute_targets_mark_what_a_text_names():
    scene = world.scenes("train", 1)[0]
    t = attribute_targets([world.caption(scene), "a red circle"])
    assert t.shape == (2, len(CODES))
    assert {CODES[i] for i in t[0].nonzero().flatten().tolist()} == {(o.shape, o.color, o.size) for o in scene.objects}
    assert {CODES[i] for i in t[1].nonzero().flatten().tolist()} == {("circle", "red", "small"), ("circle", "red", "large")}


@pytest.mark.parametrize("step", ["image", "text", "match", "vlp match"])
def test_a_few_matching_and_classification_steps_reduce_each_loss(batch, step):
    torch.manual_seed(0)
    if step == "vlp match":  # from chance (ln 2) the decoder needs a warm-up and ~30 steps to fit the batch
        model = VLP(config_for("tiny", len(TOK), TOK.eos_id))
        losses, _ = fit(model, vlp_match_step, lambda i: batch, TrainConfig(steps=30, lr=3e-4, warmup=5, final_lr=1.0))
        assert losses[-1] < 0.5 * losses[0], losses
        return
    model = new_classic(TOK, fusion="mlp")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    run = {"image": lambda: image_step(model, opt, batch, TOK), "text": lambda: text_step(model, opt, batch, TOK),
           "match": lambda: match_step(model, opt, batch)}[step]
    losses = [run() for _ in range(6)]
    assert losses[-1] < 0.9 * losses[0], losses


def test_frozen_towers_learn_only_their_head(batch):
    torch.manual_seed(0)
    net = VLP(config_for("tiny", len(TOK), TOK.eos_id), pad_id=TOK.pad_id)
    towers = FrozenTowers(net, fusion="mlp")
    before = {k: v.clone() for k, v in towers.state_dict().items()}
    opt = torch.optim.AdamW([p for p in towers.parameters() if p.requires_grad], lr=1e-2)
    losses = [match_step(towers, opt, batch) for _ in range(20)]
    changed = {k for k, v in towers.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("match_head.") for k in changed), changed
    assert losses[-1] < 0.7 * losses[0], losses
    image, text = towers.encode_image(batch.pixels), towers.encode_text(batch.texts)
    assert image.shape == (8, 128) and torch.allclose(image.norm(dim=-1), torch.ones(8))
    assert torch.allclose(text, F.normalize(net.encode_text(batch.texts).embedding, dim=-1))


def test_linear_fusion_is_additive_and_mlp_fusion_is_not(batch):
    """Concatenation + one linear layer: the score gap between two texts is the same on every image."""
    torch.manual_seed(0)
    a, b = batch.texts[:1], batch.wrong_texts[:1]
    linear = additive_gap(new_classic(TOK, "linear").eval(), batch.pixels, a, b)
    mlp = additive_gap(new_classic(TOK, "mlp").eval(), batch.pixels, a, b)
    assert linear.std() < 1e-5 * (1 + linear.abs().mean())
    assert mlp.std() > 1e-3


def test_match_pairs_are_true_and_false_as_labelled():
    scenes = world.scenes("test", 30)
    pairs = match_pairs("test", 30, VISION)
    assert pairs.pixels.shape == (30, 3, 64, 64)
    assert all(world.caption_correct(c, s) for c, s in zip(pairs.captions, scenes))
    assert not any(world.holds(t, s) for t, s in zip(pairs.near_misses, scenes))
    two = [scenes[i] for i in pairs.relation_scenes.tolist()]
    assert two and all(len(s.objects) == 2 for s in two)
    assert not any(world.holds(t, s) for t, s in zip(pairs.relation_misses, two))
    # an attribute near miss names other objects; a relation near miss the same ones
    for t, s in zip(pairs.relation_misses, two):
        assert sorted(world.parse(t).objects) == sorted((o.shape, o.color, o.size) for o in s.objects)


def test_match_accuracy_reads_a_perfect_and_an_inverted_scorer():
    scenes = world.scenes("test", 20)
    pairs = match_pairs("test", 20, VISION)

    def oracle(pixels, ids):  # finds each row's scene by its pixels and checks the text against it
        rows = [int((pairs.pixels == p).flatten(1).all(1).nonzero()[0]) for p in pixels]
        return torch.tensor([float(world.holds(TOK.decode(r), scenes[j])) for r, j in zip(ids.tolist(), rows)])

    assert set(match_accuracy(oracle, pairs, TOK).values()) == {1.0}
    assert set(match_accuracy(lambda p, ids: 1 - oracle(p, ids), pairs, TOK).values()) == {0.0}
    always_no = match_accuracy(lambda p, ids: torch.full((len(ids),), 0.1), pairs, TOK)
    assert always_no == {"true pairs": 0.0, "near misses": 1.0, "relation near misses": 1.0,
                         "caption above near miss": 0.0, "caption above relation near miss": 0.0}
    torch.manual_seed(0)
    scores = match_accuracy(vlp_match(VLP(config_for("tiny", len(TOK), TOK.eos_id)).eval()), pairs, TOK)
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_prefix_lm_has_vlp_tinys_parameters_within_15_percent():
    vlp_tiny = n_params(VLP(config_for("tiny", len(TOK), TOK.eos_id)))
    prefix = n_params(PrefixLM(prefix_config_for("tiny", len(TOK))))
    assert abs(prefix - vlp_tiny) <= 0.15 * vlp_tiny, (prefix, vlp_tiny)


def test_prefix_decoder_is_causal_and_reads_the_image(batch):
    torch.manual_seed(0)
    net = PrefixLM(prefix_config_for("tiny", len(TOK))).eval()
    tokens = net.encode_image(batch.pixels[:2]).tokens
    ids = batch.captions[:2, :8].clone()
    with torch.no_grad():
        logits = net.decoder(ids, tokens).logits
        assert logits.shape == (2, 8, len(TOK))
        later = ids.clone()
        later[:, 5:] = TOK.encode("purple")[0]
        changed = net.decoder(later, tokens).logits
        assert torch.allclose(logits[:, :5], changed[:, :5], atol=1e-5)
        assert not torch.allclose(logits[:, 5:], changed[:, 5:], atol=1e-3)
        other_image = net.decoder(ids, tokens.flip(0)).logits
        assert not torch.allclose(logits[:, :1], other_image[:, :1], atol=1e-4)


def test_prefix_decoding_with_the_cache_equals_decoding_without(batch):
    """Word by word through the KV cache (the prefix enters it on the first call) gives the
    logits of one pass over the whole sequence, and greedy decoding the same words."""
    torch.manual_seed(0)
    net = PrefixLM(prefix_config_for("tiny", len(TOK))).eval()
    tokens = net.encode_image(batch.pixels[:3]).tokens
    ids = batch.captions[:3, :7]
    with torch.no_grad():
        full = net.decoder(ids, tokens).logits  # (3, 7, vocab)
        caches = net.decoder.new_caches()
        steps = [net.decoder(ids[:, t : t + 1], tokens, caches=caches).logits[:, -1] for t in range(7)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)
    prompts = [[TOK.bos_id]] * 3
    cached = generate(net.decoder, tokens, prompts, TOK.eos_id, TOK.pad_id, max_new_tokens=6, use_cache=True)
    assert cached == generate(net.decoder, tokens, prompts, TOK.eos_id, TOK.pad_id, max_new_tokens=6, use_cache=False)


@pytest.mark.parametrize("fusion", ["prefix", "cross"])
def test_a_few_fusion_steps_reduce_captioning_and_vqa_losses(batch, fusion):
    torch.manual_seed(0)
    net = PrefixLM(prefix_config_for("tiny", len(TOK))) if fusion == "prefix" else VLP(
        config_for("tiny", len(TOK), TOK.eos_id))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    first = {k: v.item() for k, v in fusion_losses(net, batch).items()}
    for _ in range(12):
        fusion_step(net, opt, batch)
    last = {k: v.item() for k, v in fusion_losses(net, batch).items()}
    assert set(first) == {"caption", "vqa"}
    assert all(last[k] < 0.8 * first[k] for k in first), (first, last)
    said = answers(net.eval(), batch.pixels[:2], ["what color is the circle?", "how many shapes are there?"], TOK)
    assert all(a in world.all_answers() for a in said)
