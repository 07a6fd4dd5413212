"""Real weights: OpenCLIP in vlp's layers against open_clip, BLIP against transformers, offline
behaviour, composition. No network: every model is randomly initialised and saved to a temporary
folder, then loaded back through `vlp.load`."""
import json
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file

import vlp
from vlp.checkpoint import fingerprint
from vlp.errors import Unsupported
from vlp.clip import CLIP, openclip_key_map
from vlp.openclip import unsupported
from vlp.compose import compose
from vlp.hub import PROXY_VARIABLES
from vlp.images import preprocess
from vlp.protocol import CAPTIONER, Capabilities

TEXTS = ["a photo of a cat", "a diagram of a red circle to the left of a blue square", "", "word " * 100]

# A ViT-B-style CLIP, shrunk: same structure (patches, class token, pre-LN, causal text tower,
# CLIP's BPE vocabulary and context length), tiny widths.
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def image(w=100, h=80, seed=0) -> Image.Image:
    """Noise, the hardest case for resize parity. 100×80 resizes to 80×64 exactly at 64 px."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def save_reference(arch: str, folder: Path, seed: int = 0):
    """A random open_clip model of `arch`, saved as .safetensors and as a .pt training checkpoint."""
    torch.manual_seed(seed)
    ref = open_clip.create_model(arch).eval()
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file(state, str(folder / f"{arch}.safetensors"))
    # A training checkpoint: extra entries, DataParallel's "module." prefix; read with weights_only=True.
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / f"{arch}.pt")
    return ref


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{quick_gelu: (arch, open_clip reference, folder)} for a GELU and a QuickGELU tiny architecture."""
    folder = tmp_path_factory.mktemp("openclip")
    out = {}
    for quick in (False, True):
        arch = "vlp-test-tiny" + ("-quickgelu" if quick else "")
        (folder / f"{arch}.json").write_text(json.dumps({**TINY, "quick_gelu": quick}))
        open_clip.add_model_config(folder / f"{arch}.json")
        out[quick] = (arch, save_reference(arch, folder, seed=int(quick)), folder)
    return out


@pytest.fixture(scope="module")
def clip(tiny):
    arch, _, folder = tiny[False]
    return vlp.load(f"openclip:{arch}:{folder / arch}.safetensors", device="cpu")


def reference_embeddings(ref, arch, images, texts):
    """open_clip's own preprocessing, tokenizer and encoders: (images, texts, exp(logit_scale))."""
    transform = open_clip.image_transform(ref.visual.image_size[0], is_train=False)
    with torch.no_grad():
        img = ref.encode_image(torch.stack([transform(i) for i in images]), normalize=True)
        txt = ref.encode_text(open_clip.get_tokenizer(arch)(texts), normalize=True)
    return img.numpy(), txt.numpy(), ref.logit_scale.exp().item()


# --- OpenCLIP parity ---------------------------------------------------------------------------


@pytest.mark.parametrize("quick_gelu", [False, True], ids=["gelu", "quickgelu"])
@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_openclip_embeddings_equal_open_clip(tiny, quick_gelu, fmt):
    arch, ref, folder = tiny[quick_gelu]
    m = vlp.load(f"openclip:{arch}:{folder / arch}.{fmt}", device="cpu")
    images = [image(), image(80, 100, seed=1), image(64, 64, seed=2)]
    img, txt, scale = reference_embeddings(ref, arch, images, TEXTS)
    ours_img, ours_txt = m.embed_images(images), m.embed_texts(TEXTS)
    assert ours_img.dtype == np.float32 and ours_img.shape == (3, 32)
    assert np.abs(ours_img - img).max() <= 1e-4
    assert np.abs(ours_txt - txt).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours_txt, axis=1), 1, atol=1e-5)
    # Zero-shot: the same logits, so the same probabilities.
    labels = ["cat", "dog", "red circle"]
    _, label_txt, _ = reference_embeddings(ref, arch, images[:1], [f"a photo of a {x}." for x in labels])
    logits = scale * label_txt @ img[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    probs = m.classify(images[0], labels)
    assert list(probs) == labels
    np.testing.assert_allclose(list(probs.values()), expected, atol=1e-5)
    assert abs(m.net.logit_scale.exp().item() - scale) < 1e-6


def test_the_gelu_variant_matters(tiny):
    """Same weights, QuickGELU on or off: different embeddings, so the flag is really read."""
    arch_g, _, folder = tiny[False]
    arch_q, _, _ = tiny[True]
    gelu = vlp.load(f"openclip:{arch_g}:{folder / arch_g}.safetensors", device="cpu")
    quick = vlp.load(f"openclip:{arch_q}:{folder / arch_g}.safetensors", device="cpu")
    assert gelu.net.vision.config.quick_gelu is False and quick.net.vision.config.quick_gelu is True
    assert np.abs(gelu.embed_images([image()]) - quick.embed_images([image()])).max() > 1e-3


def test_fingerprint_is_the_weights_not_the_file(tiny):
    arch, _, folder = tiny[False]
    a = vlp.load(f"openclip:{arch}:{folder / arch}.safetensors", device="cpu")
    b = vlp.load(f"openclip:{arch}:{folder / arch}.pt", device="cpu")
    c = vlp.load(f"openclip:{arch}-quickgelu:{folder / arch}-quickgelu.safetensors", device="cpu")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 12 and a.fingerprint == fingerprint(a.net.state_dict())


def test_key_map_covers_every_weight_once(tiny):
    _, ref, _ = tiny[False]
    net = CLIP(*_configs(TINY))
    key_map = openclip_key_map(2, 2)
    weights = set(ref.state_dict()) - {"attn_mask"}
    assert set(key_map) == weights and set(key_map.values()) == set(net.state_dict())
    assert len(key_map) == len(weights) == len(net.state_dict()) == 1 + 8 + 5 + 2 * 2 * 12


def _configs(model_cfg):
    from vlp.openclip import openclip_configs

    return openclip_configs(model_cfg, False, (0.5,) * 3, (0.5,) * 3, "crop")


def test_local_dir_layout(tiny, tmp_path):
    """OpenCLIP's folder layout: open_clip_config.json (model + preprocess config) beside the weights."""
    arch, ref, folder = tiny[True]
    config = {"model_cfg": {**TINY, "quick_gelu": True}, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    (tmp_path / "open_clip_model.safetensors").write_bytes((folder / f"{arch}.safetensors").read_bytes())
    m = vlp.load(f"openclip:local-dir:{tmp_path}", device="cpu")
    assert m.net.vision.config.std == (0.25,) * 3 and m.net.vision.config.quick_gelu
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref.encode_image(pixels, normalize=True)
        assert (m.net.encode_image(pixels) - expected).abs().max() <= 1e-4


def test_a_checkpoint_of_another_model_is_refused(tiny, tmp_path):
    arch, ref, _ = tiny[False]
    state = {k: v for k, v in ref.state_dict().items() if "resblocks.1." not in k}
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "short.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        vlp.load(f"openclip:{arch}:{tmp_path / 'short.safetensors'}", device="cpu")
    wide = {k: v.contiguous() for k, v in ref.state_dict().items()}
    wide["visual.proj"] = torch.zeros(64, 48)
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ValueError, match="shape"):
        vlp.load(f"openclip:{arch}:{tmp_path / 'wide.safetensors'}", device="cpu")


def test_pickled_modules_are_not_loaded(tiny, tmp_path):
    arch, ref, _ = tiny[False]
    torch.save(ref, tmp_path / "whole_model.pt")  # a pickled module: loading it would run code
    with pytest.raises(ValueError, match="weights_only"):
        vlp.load(f"openclip:{arch}:{tmp_path / 'whole_model.pt'}", device="cpu")


@pytest.mark.parametrize("size", [(100, 80), (80, 100), (64, 64), (300, 200), (101, 79), (79, 101)])
def test_preprocessing_matches_open_clip(clip, size):
    ours = preprocess([image(*size)], clip.net.vision.config)[0]
    theirs = open_clip.image_transform(64, is_train=False)(image(*size))
    assert (ours - theirs).abs().max() <= 1e-5


# --- The CLIP model's protocol -----------------------------------------------------------------


def test_clip_attention_shapes_and_rows(clip):
    maps = clip.attention(image(), "a red circle")
    assert maps.grid == 4 and len(maps.vision) == 2 and maps.image.size == (64, 64)
    for a in maps.vision:
        assert a.shape == (4, 17, 17) and a.dtype == np.float32  # (heads, T, T), T = 1 + 4²
        np.testing.assert_allclose(a.sum(-1), 1, atol=1e-5)
    assert maps.tokens == ["<start_of_text>", "a", "red", "circle", "<end_of_text>"]
    assert [a.shape for a in maps.text] == [(4, 5, 5)] * 2
    np.testing.assert_allclose(maps.text[0].sum(-1), 1, atol=1e-5)
    assert np.triu(maps.text[1][0], 1).max() == 0  # causal
    assert maps.cross == [] and maps.rollout().shape == (4, 4)
    assert clip.attention(image()).text == []


def test_clip_classify_match_and_errors(clip):
    probs = clip.classify(image(), ["cat", "dog", "bird"], templates=["a photo of a {}.", "a drawing of a {}."])
    assert abs(sum(probs.values()) - 1) < 1e-6 and all(0 < p < 1 for p in probs.values())
    p = clip.match(image(), "a cat")
    assert 0 < p < 1 and isinstance(p, float)
    np.testing.assert_allclose(clip.match_many(image(), ["a cat", "a dog"])[0], p, rtol=1e-5)
    with pytest.raises(ValueError, match="template"):
        clip.classify(image(), ["cat"], templates=["a photo"])
    with pytest.raises(ValueError, match="once"):
        clip.classify(image(), ["cat", "cat"])
    with pytest.raises(Unsupported, match=f"cannot caption; load a captioner such as {CAPTIONER}"):
        clip.caption(image())
    with pytest.raises(ValueError, match="cannot answer"):
        clip.answer(image(), "what is this?")
    with pytest.raises(ValueError, match="No image file"):
        clip.embed_images(["/no/such/image.png"])
    assert clip.embed_images([]).shape == (0, 32) and clip.embed_texts([]).shape == (0, 32)
    card = clip.card()
    assert set(card) == {"name", "description", "trained_on", "metrics", "limits"}
    assert any("not a trained probability" in s for s in card["limits"])
    assert clip.capabilities == Capabilities(caption=False, answer=False, match="cosine", embed=True, attention=True)
    assert clip.embed_dim == 32


def test_specs_that_cannot_load_say_why():
    with pytest.raises(ValueError, match="Unknown OpenCLIP architecture 'ViT-Q-99'; known: .*ViT-B-16.*ViT-B-32"):
        vlp.load("openclip:ViT-Q-99:openai")
    with pytest.raises(ValueError, match="needs weights: add a pretrained tag .*laion2b_s34b_b79k"):
        vlp.load("openclip:ViT-B-32")
    with pytest.raises(ValueError, match="no OpenCLIP tag 'nope'"):
        vlp.load("openclip:ViT-B-32:nope")
    assert "ViT-B-32" not in str(unsupported(open_clip.get_model_config("ViT-B-32")))
    assert unsupported(open_clip.get_model_config("ViT-M-16-alt")) == ["image ls_init_value=0.0001"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ViT-B-32", "ViT-B-16"])
def test_full_size_parity(arch, tmp_path):
    ref = save_reference(arch, tmp_path)
    m = vlp.load(f"openclip:{arch}:{tmp_path / arch}.safetensors", device="cpu")
    images = [image(300, 200), image(224, 224, seed=1)]
    img, txt, _ = reference_embeddings(ref, arch, images, TEXTS)
    assert np.abs(m.embed_images(images) - img).max() <= 1e-4
    assert np.abs(m.embed_texts(TEXTS) - txt).max() <= 1e-4
    maps = m.attention(images[0])
    grid = 224 // int(arch[-2:])
    assert maps.vision[0].shape == (12, 1 + grid**2, 1 + grid**2) and len(maps.vision) == 12


# --- BLIP through transformers -----------------------------------------------------------------

WORDS = "a the red blue green circle square cat dog what color is ? , . two one how many left right of".split()


@pytest.fixture(scope="module")
def blip_folders(tmp_path_factory):
    """Tiny random BLIP models of each head, saved with a processor, as a Hub download would be."""
    from transformers import BertTokenizer, BlipConfig, BlipImageProcessor, BlipProcessor

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]", additional_special_tokens=["[ENC]"])
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = BlipConfig(
        text_config=dict(
            **small, vocab_size=len(tokenizer), max_position_embeddings=64,
            bos_token_id=tokenizer.bos_token_id, pad_token_id=0, sep_token_id=3, eos_token_id=3,
        ),
        vision_config=dict(**small, image_size=32, patch_size=8),
        image_text_hidden_size=16,
    )  # fmt: skip
    folders = {}
    for kind, name in [("caption", "BlipForConditionalGeneration"), ("vqa", "BlipForQuestionAnswering"),
                       ("itm", "BlipForImageTextRetrieval")]:  # fmt: skip
        torch.manual_seed(0)
        folders[kind] = tmp_path_factory.mktemp(kind)
        getattr(transformers, name)(config).eval().save_pretrained(folders[kind])
        processor.save_pretrained(folders[kind])
    return folders


@pytest.fixture(scope="module")
def blip(blip_folders):
    return {kind: vlp.load(f"blip:{folder}", device="cpu") for kind, folder in blip_folders.items()}


def direct(folder):
    """The same checkpoint, straight through transformers."""
    config = json.loads((Path(folder) / "config.json").read_text())
    model = getattr(transformers, config["architectures"][0]).from_pretrained(folder).eval()
    return model, transformers.BlipProcessor.from_pretrained(folder)


def test_blip_capabilities_follow_the_checkpoint(blip):
    can = {kind: m.capabilities for kind, m in blip.items()}
    assert (can["caption"].caption, can["caption"].answer, can["caption"].match) == (True, False, None)
    assert (can["vqa"].caption, can["vqa"].answer, can["vqa"].match) == (False, True, None)
    assert (can["itm"].caption, can["itm"].answer, can["itm"].match) == (False, False, "probability")
    assert blip["itm"].embed_dim == 16 and blip["caption"].embed_dim == 0
    with pytest.raises(ValueError, match="cannot answer questions; load a VQA model such as blip:Salesforce/blip-vqa"):
        blip["caption"].answer(image(), "what color is it?")
    with pytest.raises(ValueError, match="cannot caption; load a captioner such as"):
        blip["vqa"].caption(image())
    with pytest.raises(ValueError, match="has no matching head"):
        blip["caption"].match(image(), "a cat")
    probs = blip["itm"].classify(image(), ["cat", "dog"])  # by its contrastive (ITC) embeddings
    assert list(probs) == ["cat", "dog"] and sum(probs.values()) == pytest.approx(1.0)
    with pytest.raises(Unsupported, match="does not embed images and texts"):
        blip["caption"].classify(image(), ["cat"])
    for m in blip.values():
        card = m.card()
        assert card["name"].startswith("blip:") and card["limits"] and card["metrics"] == {}


@pytest.mark.parametrize("num_beams", [1, 3])
def test_blip_caption_equals_transformers(blip, blip_folders, num_beams):
    model, processor = direct(blip_folders["caption"])
    inputs = processor(images=image(), return_tensors="pt")
    ids = model.generate(**inputs, num_beams=num_beams, max_length=12)
    assert blip["caption"].caption(image(), num_beams=num_beams, max_length=12) == processor.decode(
        ids[0], skip_special_tokens=True
    ).strip()


def test_blip_answer_and_scores_equal_transformers(blip, blip_folders):
    model, processor = direct(blip_folders["vqa"])
    question = "what color is the circle?"
    inputs = processor(images=image(), text=question, return_tensors="pt")
    ids = model.generate(**inputs, max_length=10)
    assert blip["vqa"].answer(image(), question) == processor.decode(ids[0], skip_special_tokens=True).strip()
    # answer_scores: the beams transformers finds, each with exp(its summed log-probability).
    out = model.generate(**inputs, max_length=10, num_beams=3, num_return_sequences=3, length_penalty=0.0,
                         output_scores=True, return_dict_in_generate=True)  # fmt: skip
    expected = {}
    for seq, score in zip(out.sequences, out.sequences_scores.exp().tolist()):
        text = processor.decode(seq, skip_special_tokens=True).strip()
        expected[text] = expected.get(text, 0.0) + score
    scores = blip["vqa"].answer_scores(image(), question, k=3)
    assert [a for a, _ in scores] == sorted(expected, key=lambda a: -expected[a])
    np.testing.assert_allclose([p for _, p in scores], [expected[a] for a, _ in scores], rtol=1e-4)
    with pytest.raises(ValueError, match="question is empty"):
        blip["vqa"].answer(image(), "  ")


def test_blip_match_and_embeddings_equal_transformers(blip, blip_folders):
    model, processor = direct(blip_folders["itm"])
    texts = ["a red circle", "two blue squares left of a green cat"]
    with torch.no_grad():
        expected = [
            model(**processor(images=image(), text=t, return_tensors="pt")).itm_score.softmax(-1)[0, 1].item()
            for t in texts
        ]
        itc = model(**processor(images=image(), text=texts[0], return_tensors="pt"), use_itm_head=False).itm_score
    m = blip["itm"]
    np.testing.assert_allclose(m.match_many(image(), texts), expected, atol=1e-5)  # padded batch = one by one
    assert abs(m.match(image(), texts[1]) - expected[1]) < 1e-5
    e_img, e_txt = m.embed_images([image()]), m.embed_texts(texts)
    assert e_img.shape == (1, 16) and e_txt.shape == (2, 16) and e_img.dtype == np.float32
    assert abs(float(e_img[0] @ e_txt[0]) - itc.item()) < 1e-5


def test_blip_caption_cross_attention_behind_each_word(blip, blip_folders):
    m = blip["caption"]
    maps = m.attention(image())
    model, processor = direct(blip_folders["caption"])
    ids = model.generate(**processor(images=image(), return_tensors="pt"), max_length=30)[0, 1:]
    words = processor.tokenizer.convert_ids_to_tokens(ids)
    assert maps.tokens == words and maps.grid == 4 and maps.image.size == (32, 32)
    assert [a.shape for a in maps.vision] == [(2, 17, 17)] * 2
    assert [a.shape for a in maps.cross] == [(2, len(words), 17)] * 2
    np.testing.assert_allclose(maps.cross[1].sum(-1), 1, atol=1e-5)
    assert maps.word_to_patches(0).shape == (4, 4)
    given = m.attention(image(), "a red circle")
    assert given.tokens == ["a", "red", "circle"] and given.cross[0].shape == (2, 3, 17)


def test_blip_question_attention(blip):
    maps = blip["vqa"].attention(image(), "what color is the circle?")
    assert maps.tokens[0] == "[CLS]" and maps.tokens[-1] == "[SEP]" and len(maps.tokens) == 8
    assert [a.shape for a in maps.cross] == [(2, 8, 17)] * 2 and [a.shape for a in maps.text] == [(2, 8, 8)] * 2
    assert blip["itm"].attention(image()).cross == []


def test_blip_folders_that_cannot_load(tmp_path, blip_folders):
    with pytest.raises(ValueError, match="No BLIP folder at /no/such/folder"):
        vlp.load("blip:/no/such/folder")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (tmp_path / "model.safetensors").write_bytes((blip_folders["itm"] / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="is a BertModel model; vlp loads BLIP as one of"):
        vlp.load(f"blip:{tmp_path}")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="No .safetensors weights"):
        vlp.load(f"blip:{tmp_path}")


# --- Offline, and the Hub cache ---------------------------------------------------------------


def put_in_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out as huggingface_hub's cache holds a download: refs/main → snapshots/COMMIT/."""
    repo, commit = cache / f"models--{repo_id.replace('/', '--')}", "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    for name, source in files.items():
        (repo / "snapshots" / commit / name).symlink_to(source)


@pytest.fixture
def hub(monkeypatch, tmp_path, tiny, blip_folders):
    """An empty Hugging Face cache, then three models put in it as if downloaded earlier."""
    from huggingface_hub import constants
    from open_clip.pretrained import _pcfg

    # huggingface_hub reads these at import; the tests point them elsewhere for their duration.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *PROXY_VARIABLES):
        monkeypatch.delenv(variable, raising=False)
    arch, _, folder = tiny[False]
    # A pretrained tag for the tiny architecture, its weights already in the cache.
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, arch, {"cached": _pcfg(hf_hub="vlp-test/tiny-tag/")})
    put_in_hub_cache(tmp_path, "vlp-test/tiny-tag", {"open_clip_model.safetensors": folder / f"{arch}.safetensors"})
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    put_in_hub_cache(
        tmp_path,
        "vlp-test/tiny-hub",
        {"open_clip_config.json": tmp_path / "open_clip_config.json",
         "open_clip_pytorch_model.bin": folder / f"{arch}.pt"},
    )
    put_in_hub_cache(tmp_path, "vlp-test/blip-tiny", {p.name: p for p in blip_folders["caption"].iterdir()})
    return monkeypatch


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_the_hub_cache_first_and_missing_weights_fail_fast(hub, network, clip, blip):
    """HF_HUB_OFFLINE=1: no network is tried; an unreachable Hub: no retries. Either way cached
    models load, and missing ones fail in under 10 s with one sentence and the fetch command."""
    from huggingface_hub import constants

    if network == "offline":
        hub.setenv("HF_HUB_OFFLINE", "1")
        why = "HF_HUB_OFFLINE is set"
    else:
        hub.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
        why = "huggingface.co does not answer"
    assert vlp.load("openclip:vlp-test-tiny:cached", device="cpu").fingerprint == clip.fingerprint
    assert vlp.load("openclip:hf-hub:vlp-test/tiny-hub", device="cpu").fingerprint == clip.fingerprint
    assert vlp.load("blip:vlp-test/blip-tiny", device="cpu").fingerprint == blip["caption"].fingerprint
    errors = {}
    for spec in ["openclip:ViT-B-32:laion2b_s34b_b79k", "blip:Salesforce/blip-image-captioning-base"]:
        start = time.time()
        with pytest.raises(ValueError) as err:
            vlp.load(spec, device="cpu")
        assert time.time() - start < 10
        errors[spec.split(":")[0]] = str(err.value)
    assert errors["openclip"] == (
        f"The OpenCLIP checkpoint ViT-B-32:laion2b_s34b_b79k is not on this machine and cannot be downloaded ({why}); "
        "fetch it with `python -c \"import open_clip; "
        "open_clip.create_model_and_transforms('ViT-B-32', pretrained='laion2b_s34b_b79k')\"`."
    )
    assert errors["blip"] == (
        f"The BLIP model Salesforce/blip-image-captioning-base is not on this machine and cannot be downloaded "
        f"({why}); fetch it with `hf download Salesforce/blip-image-captioning-base`."
    )


# --- Composition -------------------------------------------------------------------------------


def test_compose_routes_each_method(clip, blip):
    m = compose(clip, blip["caption"])
    assert m.capabilities.caption and not m.capabilities.answer and m.capabilities.match == "cosine"
    assert m.embed_dim == 32 and m.device == clip.device
    assert m.caption(image(), max_length=12) == blip["caption"].caption(image(), max_length=12)
    np.testing.assert_array_equal(m.embed_texts(["a cat"]), clip.embed_texts(["a cat"]))
    assert m.classify(image(), ["cat", "dog"]) == clip.classify(image(), ["cat", "dog"])
    assert m.match(image(), "a cat") == clip.match(image(), "a cat")  # BLIP captioner: no ITM head
    assert len(m.attention(image()).vision) == 2
    with pytest.raises(ValueError, match="cannot answer"):
        m.answer(image(), "what is it?")
    card = m.card()
    assert card["name"] == f"{clip.spec} + {blip['caption'].spec}"
    assert len(card["limits"]) == len(clip.card()["limits"]) + len(blip["caption"].card()["limits"])
    assert len(m.fingerprint) == 12 and m.fingerprint not in (clip.fingerprint, blip["caption"].fingerprint)

    with_itm = compose(clip, blip["itm"])
    assert with_itm.match(image(), "a cat") == blip["itm"].match(image(), "a cat")
    np.testing.assert_array_equal(with_itm.embed_images([image()]), clip.embed_images([image()]))
    assert compose(clip, blip["vqa"]).answer(image(), "what?") == blip["vqa"].answer(image(), "what?")


def test_compose_keeps_vlp_tinys_trained_matching_head(blip):
    """vlp-tiny + a BLIP captioner: the match score is still vlp-tiny's ITM probability."""
    tiny = vlp.load(device="cpu")
    scene = str(vlp.ASSETS / "examples" / "test-00001.png")
    m = compose(tiny, blip["caption"])
    assert m.capabilities.match == "probability" and m.capabilities.itm
    assert m.capabilities.caption and m.capabilities.answer  # BLIP captions, vlp-tiny answers
    assert m.match(scene, "a large red circle") == tiny.match(scene, "a large red circle")
    assert m.caption(scene) == blip["caption"].caption(scene)
    assert m.answer(scene, "what color is the circle?") == tiny.answer(scene, "what color is the circle?")
