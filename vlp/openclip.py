"""OpenCLIP checkpoints by name: `openclip:ARCH[:TAG_OR_FILE]` → a `CLIPModel` in vlp's layers.

An OpenCLIP architecture's config becomes vlp's two tower configs (refused, before any
download, when it asks for something vlp's layers do not build); its weights come from a file,
a Hub repo or a pretrained tag through the Hub cache (vlp/hub.py), and are copied in by name
(vlp/clip.py).

    m = vlp.load("openclip:ViT-B-32:laion2b_s34b_b79k")     # a pretrained tag, fetched once
    m = vlp.load("openclip:ViT-B-16:/models/b16.safetensors")  # or a local file
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch

from vlp.checkpoint import fingerprint
from vlp.clip import CLIP, CLIPModel, load_openclip_weights
from vlp.device import pick_device
from vlp.errors import BadCheckpoint, ModelUnavailable, Unsupported
from vlp.hub import hub_file
from vlp.text import TextConfig
from vlp.vision import VisionConfig

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



# --- Configs ----------------------------------------------------------------------------------


def openclip_configs(model_cfg: dict, quick_gelu: bool, mean, std, resize: str) -> tuple[VisionConfig, TextConfig]:
    """An OpenCLIP model config (`open_clip.get_model_config(ARCH)`) → vlp's two tower configs.

    Raises:
        Unsupported: the config asks for something vlp's layers do not build (see `unsupported`).
    """
    problems = unsupported(model_cfg)
    if problems:
        raise Unsupported(f"vlp cannot build this OpenCLIP architecture: {'; '.join(problems)}.")
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


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from a .safetensors file, or from a torch file read with weights_only=True (no code runs)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise BadCheckpoint(
            f"{path} is neither safetensors nor a plain torch state dict ({type(err).__name__}); "
            "vlp reads torch files with weights_only=True only."
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]  # a training checkpoint
    if not isinstance(checkpoint, dict):
        raise BadCheckpoint(f"{path} does not hold a state dict.")
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
        vlp.errors.VLPError: one sentence: an unknown architecture (listing the known ones), missing
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
        raise Unsupported(f"vlp cannot build {name} ({'; '.join(problems)}); it builds {known}.")


def _openclip_builtin(arch: str, weights: str) -> tuple[dict, dict, Path, str]:
    """A built-in ARCH and a tag or file → (model config, preprocess config, weights file, trained on)."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ModelUnavailable(f"Unknown OpenCLIP architecture {arch!r}; known: {', '.join(known_architectures())}.")
    _check_buildable(arch, model_cfg, {})
    tags = list_pretrained_tags_by_model(arch)
    if not weights:
        raise ModelUnavailable(
            f"openclip:{arch} needs weights: add a pretrained tag ({', '.join(tags) or 'none published'}) "
            f"or a file, e.g. openclip:{arch}:{tags[-1] if tags else 'weights.safetensors'}."
        )
    if Path(weights).expanduser().is_file():
        return model_cfg, {}, Path(weights).expanduser(), f"unknown (weights from the file {Path(weights).name})"
    tag_cfg = get_pretrained_cfg(arch, weights)
    if not tag_cfg:
        raise ModelUnavailable(f"No file at {weights} and no OpenCLIP tag {weights!r} for {arch}; tags: {', '.join(tags)}.")
    _check_buildable(arch, model_cfg, tag_cfg)  # the tag's preprocessing too
    trained_on = next((d for prefix, d in DATASETS.items() if weights.lower().startswith(prefix)), "unknown")
    return model_cfg, tag_cfg, _openclip_tag_file(arch, weights, tag_cfg), f"{trained_on} (OpenCLIP tag {weights})"


def _openclip_tag_file(arch: str, tag: str, tag_cfg: dict) -> Path:
    """The weights of a pretrained tag, through the Hub cache (safetensors preferred)."""
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        raise ModelUnavailable(
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
            raise ModelUnavailable(f"No open_clip_config.json in {config_path.parent}.")
    config = json.loads(config_path.read_text())
    model_cfg, preprocess_cfg = config.get("model_cfg", config), config.get("preprocess_cfg", {})
    _check_buildable(spec, model_cfg, preprocess_cfg)
    if schema == "hf-hub":
        path = hub_file(where, names, f"The OpenCLIP checkpoint {where}", fetch)
    else:
        found = [config_path.parent / n for n in names if (config_path.parent / n).is_file()]
        found += sorted(config_path.parent.glob("*.safetensors"))
        if not found:
            raise ModelUnavailable(f"No weights in {config_path.parent} (expected {' or '.join(names)}).")
        path = found[0]
    return model_cfg, preprocess_cfg, path, config_path.parent
