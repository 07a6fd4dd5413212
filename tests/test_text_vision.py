"""Tokenizer, text encoder, decoder and ViT: shapes, masks, round trips."""
import numpy as np
import pytest
import torch
from PIL import Image

from vlp.images import load_image, preprocess
from vlp.text import DecoderConfig, MultimodalDecoder, TextConfig, TextEncoder
from vlp.tokenizer import Tokenizer
from vlp.vision import VisionConfig, VisionTransformer

WORDS = "a large small red blue circle square to the left of above what color is ? , and".split()


@pytest.fixture
def tok():
    return Tokenizer.from_words(WORDS)


def test_tokenizer_round_trip(tok, tmp_path):
    text = "a small red circle to the left of a large blue square, and a small square"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode("What color is the small circle?") == tok.encode("what color is the small circle")  # normalised
    assert tok.unk_id not in ids
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(text) == ids and len(again) == len(tok)


def test_tokenizer_lower_cases_and_splits_punctuation(tok):
    assert tok.encode("A Red, BLUE circle?") == tok.encode("a red , blue circle ?")


def test_unknown_words_become_unk_never_raise(tok):
    ids = tok.encode("a purple zebra circle")
    assert ids.count(tok.unk_id) == 2 and ids[0] == tok.encode("a")[0]
    assert tok.unknown_words("a Purple zebra circle") == ["Purple", "zebra"]
    assert tok.encode("") == []


def test_batch_adds_specials_pads_and_truncates(tok):
    ids, keep = tok.batch(["a red circle", "a red circle to the left of a blue square"], max_len=6)
    assert ids.shape == (2, 6)
    assert ids[0, 0] == tok.bos_id and ids[0, 4] == tok.eos_id and ids[0, 5] == tok.pad_id
    assert ids[1, -1] == tok.eos_id and keep[1].all() and not keep[0, 5]


def text_encoder(tok, causal):
    return TextEncoder(TextConfig(vocab_size=len(tok), width=32, heads=4, embed_dim=16, causal=causal, eos_id=tok.eos_id)).eval()


@pytest.mark.parametrize("causal", [False, True])
def test_text_encoder_ignores_padding(tok, causal):
    enc = text_encoder(tok, causal)
    short, _ = tok.batch(["a red circle"], max_len=8)
    padded, keep = tok.batch(["a red circle"], max_len=14)
    e1 = enc(short, short != tok.pad_id).embedding
    e2 = enc(padded, keep).embedding
    torch.testing.assert_close(e1, e2, atol=1e-5, rtol=0)
    assert e1.shape == (1, 16)


def test_text_encoder_causal_flag_changes_what_a_token_sees(tok):
    enc = text_encoder(tok, causal=True)
    ids, keep = tok.batch(["a red circle"], max_len=8)
    out = enc(ids, keep, need_weights=True)
    assert out.tokens.shape == (1, 8, 32) and len(out.attentions) == 2
    assert torch.all(out.attentions[0][0, :, 0, 1:] == 0)  # the first token sees only itself
    enc.config.causal = False
    attn = enc(ids, keep, need_weights=True).attentions
    assert torch.all(attn[0][0, :, 0, 1:5] > 0)
    assert enc(ids, keep).attentions == []


def test_vit_shapes_and_attention():
    cfg = VisionConfig(image_size=32, patch_size=8, width=32, layers=2, heads=4, embed_dim=16)
    vit = VisionTransformer(cfg).eval()
    out = vit(torch.randn(2, 3, 32, 32), need_weights=True)
    assert out.tokens.shape == (2, 17, 32) and out.embedding.shape == (2, 16)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 17, 17)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(2, 4, 17))
    fast = vit(torch.randn(2, 3, 32, 32))
    assert fast.attentions == []


def test_preprocess_any_mode_and_size():
    cfg = VisionConfig(image_size=32)
    images = [
        Image.new("RGBA", (50, 20), (255, 0, 0, 128)),
        Image.new("P", (10, 10)),
        Image.new("L", (40, 40), 128),
        Image.new("CMYK", (33, 17)),
        Image.fromarray(np.full((9, 9), 40000, dtype=np.uint16)),
        np.zeros((20, 30, 3), dtype=np.uint8),
    ]
    x = preprocess(images, cfg)
    assert x.shape == (6, 3, 32, 32) and torch.isfinite(x).all()
    crop = preprocess([Image.new("RGB", (100, 50))], VisionConfig(image_size=32, resize="crop"))
    assert crop.shape == (1, 3, 32, 32)


def test_rgba_is_flattened_onto_white():
    img = load_image(Image.new("RGBA", (4, 4), (0, 0, 0, 0)))
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"not an image at all", "not a readable image"),
        (np.zeros((0, 5, 3), dtype=np.uint8), "empty"),
        (np.zeros((5, 5, 7), dtype=np.uint8), "must be"),
        (12, "Expected an image"),
        ("/no/such/file.png", "No image file"),
    ],
)
def test_bad_images_raise_one_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        load_image(bad)


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(path)  # 48 megapixels, tiny on disk
    with pytest.raises(ValueError, match="too large"):
        load_image(path)


def test_decoder_cache_and_left_padding(tok):
    dec = MultimodalDecoder(DecoderConfig(vocab_size=len(tok), width=32, heads=4, layers=2, image_width=24)).eval()
    img = torch.randn(2, 5, 24)
    ids, _ = tok.batch(["a red circle", "a blue square"], max_len=5)
    full = dec(ids, img).logits
    caches = dec.new_caches()
    steps = [dec(ids[:, :2], img, caches=caches).logits]
    for t in range(2, 5):
        steps.append(dec(ids[:, t : t + 1], img, caches=caches).logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    # the same row, left-padded by two, with positions shifted back: same logits for real tokens
    pad = torch.cat([torch.full((2, 2), tok.pad_id), ids], dim=1)
    keep = pad != tok.pad_id
    positions = (keep.long().cumsum(1) - 1).clamp(min=0)
    shifted = dec(pad, img, keep=keep, positions=positions).logits
    torch.testing.assert_close(shifted[:, 2:], full, atol=1e-5, rtol=0)
