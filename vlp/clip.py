"""OpenCLIP checkpoints running in vlp's own layers.

CLIP is two towers trained so that an image and its caption land close together: a ViT reads
the image, a causal text transformer reads the caption, and each is projected into one shared
space. Zero-shot classification embeds "a photo of a {label}." for every label and takes
softmax(logit_scale · cosine) over the labels.

vlp's `VisionTransformer` and `TextEncoder` already carry CLIP's parameter names, so loading an
OpenCLIP checkpoint is a key map that only renames prefixes (`visual.` → `vision.`, the text
tower's top-level names → `text.`), with every shape checked and the load strict.

    m = vlp.load("openclip:ViT-B-32:laion2b_s34b_b79k")     # a pretrained tag, fetched once
    m = vlp.load("openclip:ViT-B-16:/models/b16.safetensors")  # or a local file
    m.classify("cat.jpg", ["cat", "dog"])  → {"cat": 0.97, "dog": 0.03}
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlp.attention import AttentionMaps
from vlp.device import autocast, pick_device
from vlp.pretrained import (
    ANSWERER,
    CAPTIONER,
    check_labels,
    check_texts,
    fingerprint,
    hub_file,
    pixels_to_image,
)
from vlp.text import TextConfig, TextEncoder
from vlp.vision import VisionConfig, VisionTransformer, preprocess

MATCH_THRESHOLD = 0.2  # the cosine that `match` calls a coin flip (see CLIPModel.match)
BATCH = 32  # images or texts per forward pass when embedding many

# The parameters of one transformer block, named alike in OpenCLIP and vlp.layers.Block.
BLOCK_KEYS = (
    "ln_1.weight", "ln_1.bias",
    "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
    "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip

# Entries an OpenCLIP checkpoint may hold that are not weights.
NOT_WEIGHTS = {"attn_mask", "input_resolution", "context_length", "vocab_size"}

# What the pretrained tags were trained on, by the tag's prefix.
DATASETS = {
    "openai": "OpenAI's WIT (400M image–text pairs from the web, not public)",
    "laion400m": "LAION-400M (image–text pairs from Common Crawl)",
    "laion2b": "LAION-2B-en (English image–text pairs from Common Crawl)",
    "laion_aesthetic": "LAION-2B, aesthetic subset",
    "datacomp": "DataComp (filtered CommonPool image–text pairs)",
    "commonpool": "CommonPool (image–text pairs from Common Crawl)",
    "dfn": "DFN (image–text pairs filtered by a data filtering network)",
    "metaclip": "MetaCLIP (curated image–text pairs from Common Crawl)",
}


# --- The network ------------------------------------------------------------------------------


class CLIP(nn.Module):
    """CLIP's two towers built from vlp's layers, and the learned temperature."""

    def __init__(self, vision: VisionConfig, text: TextConfig):
        super().__init__()
        assert vision.embed_dim == text.embed_dim, "both towers must project into one space"
        self.vision = VisionTransformer(vision)
        self.text = TextEncoder(text)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # logits = exp(this) · cosine

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) preprocessed → (B, embed_dim) L2-normalised."""
        return F.normalize(self.vision(pixels).embedding, dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, context_length) token ids → (B, embed_dim) L2-normalised.

        No padding mask: the text is read causally and pooled at its end token, which comes
        before any padding, so padding cannot reach the embedding.
        """
        return F.normalize(self.text(ids)[0], dim=-1)


def openclip_configs(model_cfg: dict, quick_gelu: bool, mean, std, resize: str) -> tuple[VisionConfig, TextConfig]:
    """An OpenCLIP model config (`open_clip.get_model_config(ARCH)`) → vlp's two tower configs.

    Raises:
        ValueError: the config asks for something vlp's layers do not build (see `unsupported`).
    """
    problems = unsupported(model_cfg)
    if problems:
        raise ValueError(f"vlp cannot build this OpenCLIP architecture: {'; '.join(problems)}.")
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    v, t = CLIPVisionCfg(**model_cfg["vision_cfg"]), CLIPTextCfg(**model_cfg["text_cfg"])
    embed_dim = model_cfg["embed_dim"]
    vision = VisionConfig(
        image_size=v.image_size,
        patch_size=v.patch_size,
        width=v.width,
        layers=v.layers,
        heads=v.width // v.head_width,  # OpenCLIP sets the head width, not the head count
        mlp_ratio=v.mlp_ratio,
        embed_dim=embed_dim,
        quick_gelu=quick_gelu,
        mean=tuple(mean),
        std=tuple(std),
        resize=resize,
    )
    # "argmax" pooling reads the highest id, CLIP's end-of-text token (the last in the vocabulary);
    # "eos" pooling reads the first `eos_id`. vlp reads the first end token: the same place.
    eos_id = t.vocab_size - 1 if t.pool_type == "argmax" else t.eos_id
    text = TextConfig(
        vocab_size=t.vocab_size,
        context_length=t.context_length,
        width=t.width,
        layers=t.layers,
        heads=t.heads,
        mlp_ratio=t.mlp_ratio,
        embed_dim=embed_dim,
        causal=True,
        quick_gelu=quick_gelu,
        eos_id=eos_id,
    )
    return vision, text


def unsupported(model_cfg: dict) -> list[str]:
    """What in an OpenCLIP model config vlp's layers cannot build (empty when all is well)."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    problems = [f"option {k!r}" for k in sorted(set(model_cfg) - {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"})]
    v, t = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    if v.get("timm_model_name"):
        problems.append(f"a timm image tower ({v['timm_model_name']})")
    if not isinstance(v.get("layers", 12), int):
        problems.append("a ResNet image tower")
    if not isinstance(v.get("image_size", 224), int) or not isinstance(v.get("patch_size", 16), int):
        problems.append("non-square images or patches")
    if t.get("hf_model_name") or t.get("hf_tokenizer_name"):
        problems.append("a Hugging Face text tower or tokenizer")
    if t.get("pool_type", "argmax") not in ("argmax", "eos"):
        problems.append(f"text pooling {t['pool_type']!r} (vlp pools at the end token)")
    # Every other field must keep OpenCLIP's default: vlp builds exactly that block.
    allowed = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "patch_dropout",
               "output_tokens", "timm_model_name", "heads", "context_length", "vocab_size", "pool_type",
               "eos_id", "pad_id", "hf_model_name", "hf_tokenizer_name"}  # fmt: skip
    for cls, given, tower in ((CLIPVisionCfg, v, "image"), (CLIPTextCfg, t, "text")):
        defaults = {f.name: f.default for f in fields(cls)}
        for key, value in given.items():
            if key not in defaults:
                problems.append(f"unknown {tower} option {key!r}")
            elif key not in allowed and value != defaults[key]:
                problems.append(f"{tower} {key}={value!r}")
    return problems


def openclip_key_map(vision_layers: int, text_layers: int) -> dict[str, str]:
    """OpenCLIP state-dict names → vlp's `CLIP` names. Only prefixes change; shapes are equal."""
    keys = {"logit_scale": "logit_scale"}
    for name in ("conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight", "ln_pre.bias",
                 "ln_post.weight", "ln_post.bias", "proj"):  # fmt: skip
        keys[f"visual.{name}"] = f"vision.{name}"
    for i in range(vision_layers):
        for name in BLOCK_KEYS:
            keys[f"visual.transformer.resblocks.{i}.{name}"] = f"vision.transformer.resblocks.{i}.{name}"
    # OpenCLIP keeps the text tower's parts at the top level of the model.
    for name in ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias",
                 "text_projection"):  # fmt: skip
        keys[name] = f"text.{name}"
    for i in range(text_layers):
        for name in BLOCK_KEYS:
            keys[f"transformer.resblocks.{i}.{name}"] = f"text.transformer.resblocks.{i}.{name}"
    return keys


def load_openclip_weights(net: CLIP, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Copy an OpenCLIP state dict into `net` through `openclip_key_map`, strictly.

    Raises:
        ValueError: a key is missing or unexpected, or a shape differs (the file is another model).
    """
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items() if k not in NOT_WEIGHTS}
    key_map = openclip_key_map(net.vision.config.layers, net.text.config.layers)
    ours = net.state_dict()
    assert len(key_map) == len(ours) and set(key_map.values()) == set(ours), "the key map misses a parameter"
    missing, unexpected = sorted(set(key_map) - set(state_dict)), sorted(set(state_dict) - set(key_map))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not hold this OpenCLIP architecture's weights: "
            f"{len(missing)} missing (e.g. {missing[:3]}) and {len(unexpected)} unexpected (e.g. {unexpected[:3]})."
        )
    mapped = {}
    for src, dst in key_map.items():
        w = state_dict[src]
        if dst == "logit_scale":
            w = w.reshape(ours[dst].shape)  # stored as a scalar or as shape (1,)
        if w.shape != ours[dst].shape:
            raise ValueError(f"{source}: {src} has shape {tuple(w.shape)} but {dst} needs {tuple(ours[dst].shape)}.")
        mapped[dst] = w
    net.load_state_dict(mapped, strict=True)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from a .safetensors file, or from a torch file read with weights_only=True (no code runs)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is neither safetensors nor a plain torch state dict ({type(err).__name__}); "
            "vlp reads torch files with weights_only=True only."
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]  # a training checkpoint
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} does not hold a state dict.")
    return checkpoint


# --- Loading by spec --------------------------------------------------------------------------


def known_architectures() -> list[str]:
    """OpenCLIP's built-in architectures that vlp's layers can build."""
    import open_clip

    return [name for name in open_clip.list_models() if not unsupported(open_clip.get_model_config(name))]


def load_openclip(spec: str, device: str | None = "auto") -> "CLIPModel":
    """`ARCH[:TAG_OR_FILE]` → a CLIPModel.

    ARCH is a built-in OpenCLIP architecture (`ViT-B-32`, `ViT-B-16`, …; see
    `known_architectures()`), `hf-hub:ORG/REPO`, or `local-dir:FOLDER` (a folder holding
    open_clip_config.json and the weights). After a built-in ARCH comes a pretrained tag
    (`laion2b_s34b_b79k`, `openai`, …), fetched from the Hub through its cache, or the path of
    a weights file (.safetensors, or a torch state dict read with weights_only=True).

    QuickGELU: on when the architecture's config or the pretrained tag says so (OpenAI's weights
    were trained with it; open_clip itself only warns when `ViT-B-32` meets the `openai` tag).

    Raises:
        ValueError: one sentence: an unknown architecture (listing the known ones), missing
            weights (with the command that fetches them), or a file that is not this model.
    """
    import open_clip

    if spec.startswith(("hf-hub:", "local-dir:")):
        model_cfg, preprocess_cfg, path, folder = _openclip_folder(spec)
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        trained_on = f"see the model card of {spec.removeprefix('hf-hub:')}"
    else:
        arch, _, weights = (part.strip() for part in spec.partition(":"))
        model_cfg, preprocess_cfg, path, trained_on = _openclip_builtin(arch, weights)
        tokenizer = open_clip.get_tokenizer(arch)
    quick_gelu = bool(model_cfg.get("quick_gelu") or preprocess_cfg.get("quick_gelu"))
    vision_cfg, text_cfg = openclip_configs(
        model_cfg,
        quick_gelu,
        mean=preprocess_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
        std=preprocess_cfg.get("std", open_clip.OPENAI_DATASET_STD),
        resize="crop" if preprocess_cfg.get("resize_mode", "shortest") == "shortest" else "squash",
    )
    net = CLIP(vision_cfg, text_cfg)
    load_openclip_weights(net, read_state_dict(path), str(path))
    return CLIPModel(net, tokenizer, f"openclip:{spec}", fingerprint(net.state_dict()), pick_device(device), trained_on)


def _check_buildable(name: str, model_cfg: dict, preprocess_cfg: dict) -> None:
    """Refuse, before any download, what vlp's layers or preprocessing cannot reproduce."""
    problems = unsupported(model_cfg)
    if preprocess_cfg.get("resize_mode", "shortest") not in ("shortest", "squash"):
        problems.append(f"resize mode {preprocess_cfg['resize_mode']!r}")
    if preprocess_cfg.get("interpolation", "bicubic") != "bicubic":
        problems.append(f"{preprocess_cfg['interpolation']} resizing")
    if problems:
        known = ", ".join(known_architectures())
        raise ValueError(f"vlp cannot build {name} ({'; '.join(problems)}); it builds {known}.")


def _openclip_builtin(arch: str, weights: str) -> tuple[dict, dict, Path, str]:
    """A built-in ARCH and a tag or file → (model config, preprocess config, weights file, trained on)."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ValueError(f"Unknown OpenCLIP architecture {arch!r}; known: {', '.join(known_architectures())}.")
    _check_buildable(arch, model_cfg, {})
    tags = list_pretrained_tags_by_model(arch)
    if not weights:
        raise ValueError(
            f"openclip:{arch} needs weights: add a pretrained tag ({', '.join(tags) or 'none published'}) "
            f"or a file, e.g. openclip:{arch}:{tags[-1] if tags else 'weights.safetensors'}."
        )
    if Path(weights).expanduser().is_file():
        return model_cfg, {}, Path(weights).expanduser(), f"unknown (weights from the file {Path(weights).name})"
    tag_cfg = get_pretrained_cfg(arch, weights)
    if not tag_cfg:
        raise ValueError(f"No file at {weights} and no OpenCLIP tag {weights!r} for {arch}; tags: {', '.join(tags)}.")
    _check_buildable(arch, model_cfg, tag_cfg)  # the tag's preprocessing too
    trained_on = next((d for prefix, d in DATASETS.items() if weights.lower().startswith(prefix)), "unknown")
    return model_cfg, tag_cfg, _openclip_tag_file(arch, weights, tag_cfg), f"{trained_on} (OpenCLIP tag {weights})"


def _openclip_tag_file(arch: str, tag: str, tag_cfg: dict) -> Path:
    """The weights of a pretrained tag, through the Hub cache (safetensors preferred)."""
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        raise ValueError(
            f"The OpenCLIP tag {arch}:{tag} is published only at {tag_cfg.get('url')}; "
            f"download that file and load it as openclip:{arch}:PATH."
        )
    repo, filename = hub.rstrip("/"), ""  # "ORG/REPO/" (OpenCLIP's default file) or "ORG/REPO/FILE"
    if not hub.endswith("/"):
        repo, filename = hub.rsplit("/", 1)
    if not filename:
        names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    elif filename.endswith(".safetensors"):
        names = [filename]
    else:
        names = [filename.rsplit(".", 1)[0] + ".safetensors", filename]  # a safetensors copy first
    fetch = f"python -c \"import open_clip; open_clip.create_model_and_transforms('{arch}', pretrained='{tag}')\""
    return hub_file(repo, names, f"The OpenCLIP checkpoint {arch}:{tag}", fetch)


def _openclip_folder(spec: str) -> tuple[dict, dict, Path, Path]:
    """`hf-hub:ORG/REPO` or `local-dir:FOLDER` → (model config, preprocess config, weights file, folder)."""
    schema, _, where = spec.partition(":")
    names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    fetch = f"hf download {where}"
    if schema == "hf-hub":
        config_path = hub_file(where, ["open_clip_config.json"], f"The OpenCLIP config of {where}", fetch)
    else:
        config_path = Path(where).expanduser() / "open_clip_config.json"
        if not config_path.is_file():
            raise ValueError(f"No open_clip_config.json in {config_path.parent}.")
    config = json.loads(config_path.read_text())
    model_cfg, preprocess_cfg = config.get("model_cfg", config), config.get("preprocess_cfg", {})
    _check_buildable(spec, model_cfg, preprocess_cfg)
    if schema == "hf-hub":
        path = hub_file(where, names, f"The OpenCLIP checkpoint {where}", fetch)
    else:
        found = [config_path.parent / n for n in names if (config_path.parent / n).is_file()]
        found += sorted(config_path.parent.glob("*.safetensors"))
        if not found:
            raise ValueError(f"No weights in {config_path.parent} (expected {' or '.join(names)}).")
        path = found[0]
    return model_cfg, preprocess_cfg, path, config_path.parent


# --- The model behind vlp's protocol ----------------------------------------------------------


class CLIPModel:
    """OpenCLIP weights in vlp's layers, serving the protocol every vlp model shares.

    It embeds, compares and classifies; it cannot caption or answer (no decoder), and has no
    image–text matching head: `match` is a squashed cosine, not a trained probability.
    """

    can_caption = False
    can_answer = False
    has_itm = False  # no trained image–text matching head

    def __init__(self, net: CLIP, tokenizer, spec: str, fingerprint: str, device: torch.device, trained_on: str):
        self.net = net.eval().to(device)
        self.tokenizer = tokenizer  # open_clip's: texts → (N, context_length) ids
        self.spec = spec
        self.fingerprint = fingerprint
        self.device = device
        self.embed_dim = net.vision.config.embed_dim
        self.trained_on = trained_on

    def card(self) -> dict:
        v = self.net.vision.config
        return {
            "name": self.spec,
            "description": (
                f"CLIP, a contrastive image–text model: a ViT image tower ({v.layers} layers of width "
                f"{v.width}, {v.patch_size}-px patches, {v.image_size}-px input) and a causal text tower "
                "projected into one space; OpenCLIP weights running in vlp's own layers."
            ),
            "trained_on": self.trained_on,
            "metrics": {},
            "limits": [
                f"It cannot caption or answer questions; load a captioner such as {CAPTIONER}.",
                (
                    "match is not a trained probability: CLIP has no matching head, so match returns "
                    f"sigmoid(logit_scale · (cosine − {MATCH_THRESHOLD})), which is 0.5 at a cosine of "
                    f"{MATCH_THRESHOLD}; compare texts with classify instead."
                ),
                f"Texts longer than {self.net.text.config.context_length} tokens are cut; it reads English best.",
                (
                    f"It sees a centre square of the image at {v.image_size}×{v.image_size} px: "
                    "content near the edges of wide or tall images is cut off."
                    if v.resize == "crop"
                    else f"It sees the image squashed to {v.image_size}×{v.image_size} px."
                ),
            ],
        }

    # Inputs → tensors.

    def _pixels(self, images) -> torch.Tensor:
        return preprocess(images, self.net.vision.config).to(self.device)

    def _ids(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.device)

    # Embeddings and comparisons.

    @torch.no_grad()
    def embed_images(self, images) -> np.ndarray:
        """Images → float32 (N, embed_dim), L2-normalised rows."""
        images = list(images)
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for i in range(0, len(images), BATCH):
            with autocast(self.device):
                e = self.net.encode_image(self._pixels(images[i : i + BATCH]))
            out.append(F.normalize(e.float(), dim=-1).cpu().numpy())  # again in float32 after bf16
        return np.concatenate(out)

    @torch.no_grad()
    def embed_texts(self, texts) -> np.ndarray:
        """Texts → float32 (N, embed_dim), L2-normalised rows."""
        texts = check_texts(texts)
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for i in range(0, len(texts), BATCH):
            with autocast(self.device):
                e = self.net.encode_text(self._ids(texts[i : i + BATCH]))
            out.append(F.normalize(e.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def match(self, image, text: str) -> float:
        """How well `text` describes `image`, in (0, 1): sigmoid(logit_scale · (cosine − 0.2)).

        CLIP was trained to rank texts against each other, not to say yes or no, so this is a
        squashed cosine, not a calibrated probability: 0.5 at cosine MATCH_THRESHOLD (0.2, roughly
        between the cosines of related and unrelated pairs in ViT-B models), steep around it
        because logit_scale is large (100 for most checkpoints).
        """
        return float(self.match_many(image, [text])[0])

    def match_many(self, image, texts) -> np.ndarray:
        """`match` for each text, independently (no softmax across them): float32 (N,)."""
        cos = self.embed_texts(texts) @ self.embed_images([image])[0]
        scale = self.net.logit_scale.exp().item()
        return (1 / (1 + np.exp(-scale * (cos - MATCH_THRESHOLD)))).astype(np.float32)

    def classify(self, image, labels, templates=None) -> dict[str, float]:
        """Zero-shot: softmax over labels of logit_scale · cos(image, mean prompt embedding).

        Args:
            labels: the classes, e.g. ["cat", "dog"].
            templates: prompts with "{}" for the label; default ["a photo of a {}."]. Several
                templates are averaged per label (CLIP's prompt ensembling).
        Returns:
            {label: probability}, in the order given, summing to 1.
        """
        labels, templates = check_labels(labels, templates)
        prompts = self.embed_texts([t.format(label) for label in labels for t in templates])
        classes = prompts.reshape(len(labels), len(templates), -1).mean(axis=1)  # (labels, D)
        classes /= np.linalg.norm(classes, axis=-1, keepdims=True)
        logits = self.net.logit_scale.exp().item() * (classes @ self.embed_images([image])[0])
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return {label: float(q) for label, q in zip(labels, p)}

    @torch.no_grad()
    def attention(self, image, text: str | None = None) -> AttentionMaps:
        """Self-attention of every image layer (and of every text layer when `text` is given).

        CLIP's towers never attend to each other, so there is no cross-attention to draw.
        The text's tokens run from <start_of_text> to <end_of_text>; padding is left out.
        """
        config = self.net.vision.config
        pixels = self._pixels([image])
        with autocast(self.device):
            vision = self.net.vision(pixels, need_weights=True).attentions
        maps = AttentionMaps(
            image=pixels_to_image(pixels[0], config.mean, config.std),
            grid=config.grid,
            vision=[a[0].float().cpu().numpy() for a in vision],
        )
        if text is not None:
            ids = self._ids(check_texts(text))
            with autocast(self.device):
                _, layers = self.net.text(ids, need_weights=True)
            n = int((ids[0] == self.net.text.config.eos_id).int().argmax()) + 1  # through the end token
            maps.tokens = [self._token(i) for i in ids[0, :n].tolist()]
            maps.text = [a[0, :, :n, :n].float().cpu().numpy() for a in layers]
        return maps

    def _token(self, i: int) -> str:
        return self.tokenizer.decode([i]).strip()

    # What CLIP cannot do.

    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str:
        raise ValueError(f"openclip models cannot caption; load a captioner such as {CAPTIONER}.")

    def answer(self, image, question: str) -> str:
        raise ValueError(f"openclip models cannot answer questions; load a VQA model such as {ANSWERER}.")

    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        raise ValueError(f"openclip models cannot answer questions; load a VQA model such as {ANSWERER}.")
