"""Word dropout on the decoder's input (vlp/word_dropout.py, lesson 7's remedy): what is hidden,
that targets keep every word, and that decoding reads what it wrote as told."""
import torch

from vlp import world
from vlp.data import WorldBatches, build_tokenizer
from vlp.generate import generate
from vlp.model import VLP, config_for
from vlp.word_dropout import captions, drop_words, hiding

TOK = build_tokenizer()
CONFIG = config_for("tiny", len(TOK), TOK.eos_id)


def test_hiding_reads_colour_words_as_unknown_and_nothing_else():
    reads = hiding(TOK, world.COLORS)
    hidden = {TOK.decode([i]) for i in (reads != torch.arange(len(TOK))).nonzero().flatten().tolist()}
    assert hidden == set(world.COLORS) and set(reads[reads != torch.arange(len(TOK))].tolist()) == {TOK.unk_id}
    ids, _ = TOK.batch(["a large red circle to the left of a small blue square"] * 200, 32)
    all_hidden = drop_words(ids, reads, 1.0)
    assert (all_hidden[0] == TOK.unk_id).sum() == 2
    assert TOK.decode(all_hidden[0].tolist()) == "a large circle to the left of a small square"  # [UNK] not shown
    assert torch.equal(drop_words(ids, reads, 0.0), ids)
    half = (drop_words(ids, reads, 0.5, torch.Generator().manual_seed(0)) != ids).sum() / (2 * 200)
    assert 0.4 < half < 0.6


def test_the_loss_reads_what_it_is_told_and_predicts_every_word():
    torch.manual_seed(0)
    net = VLP(CONFIG, pad_id=TOK.pad_id).eval()
    batch = WorldBatches("train", TOK, CONFIG.vision, seed=0).batch(0, 4)
    ids, image = batch.captions, net.encode_image(batch.pixels).tokens
    predict = ids != TOK.pad_id
    plain = net.lm_loss(ids, image, predict)
    assert torch.allclose(net.lm_loss(ids, image, predict, reads=ids), plain)
    hidden = drop_words(ids, hiding(TOK, world.COLORS), 1.0)
    assert not torch.allclose(net.lm_loss(ids, image, predict, reads=hidden), plain)
    # the same as a loss on the hidden inputs with the true words as targets, written out
    logits = net.decoder(hidden[:, :-1], image).logits
    targets = ids[:, 1:].masked_fill(~predict[:, 1:], -100)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    assert torch.allclose(net.lm_loss(ids, image, predict, reads=hidden), expected)


def test_decoding_reads_its_own_words_as_told():
    torch.manual_seed(0)
    net = VLP(CONFIG, pad_id=TOK.pad_id).eval()
    pixels = WorldBatches("train", TOK, CONFIG.vision, seed=0).batch(0, 3).pixels
    tokens = net.encode_image(pixels).tokens
    everything = torch.full((len(TOK),), TOK.unk_id)  # every word written is read as [UNK]
    cached = generate(net.decoder, tokens, [[TOK.bos_id]] * 3, TOK.eos_id, TOK.pad_id, 8, reads=everything)
    full = generate(net.decoder, tokens, [[TOK.bos_id]] * 3, TOK.eos_id, TOK.pad_id, 8, use_cache=False,
                    reads=everything)
    assert cached == full
    # by hand: each step reads [UNK] for the prompt's [BOS] and every word so far
    for row, written in enumerate(cached):
        for t, word in enumerate(written):
            seen = torch.full((1, t + 1), TOK.unk_id)
            assert net.decoder(seen, tokens[row : row + 1]).logits[0, -1].argmax().item() == word
    identity = torch.arange(len(TOK))
    plain = [TOK.decode(r) for r in generate(net.decoder, tokens, [[TOK.bos_id]] * 3, TOK.eos_id, TOK.pad_id, 8)]
    assert captions(net, TOK, pixels, identity, max_words=8) == plain
