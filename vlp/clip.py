"""CLIP in vlp's own layers, behind the model protocol.

CLIP is two towers trained so that an image and its caption land close together: a ViT reads
the image, a causal text transformer reads the caption, and each is projected into one shared
space. Zero-shot classification embeds "a photo of a {label}." for every label and takes
softmax(logit_scale · cosine) over the labels.

vlp's `VisionTransformer` and `TextEncoder` already carry CLIP's parameter names, so loading an
OpenCLIP checkpoint is a key map that only renames prefixes (`visual.` → `vision.`, the text
tower's top-level names → `text.`), with every shape checked and the load strict. Finding and
reading the checkpoint by its OpenCLIP name is vlp/openclip.py's concern.

    m = vlp.load("openclip:ViT-B-32:laion2b_s34b_b79k")
    m.classify("cat.jpg", ["cat", "dog"])  → {"cat": 0.97, "dog": 0.03}
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlp.attention import AttentionMaps
from vlp.device import autocast
from vlp.errors import BadCheckpoint
from vlp.images import pixels_to_image, preprocess
from vlp.limits import check_texts
from vlp.protocol import CAPTIONER, Capabilities, ModelBase
from vlp.text import TextConfig, TextEncoder
from vlp.vision import VisionConfig, VisionTransformer

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
        return F.normalize(self.text(ids).embedding, dim=-1)


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
        BadCheckpoint: a key is missing or unexpected, or a shape differs (the file is another model).
    """
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items() if k not in NOT_WEIGHTS}
    key_map = openclip_key_map(net.vision.config.layers, net.text.config.layers)
    ours = net.state_dict()
    assert len(key_map) == len(ours) and set(key_map.values()) == set(ours), "the key map misses a parameter"
    missing, unexpected = sorted(set(key_map) - set(state_dict)), sorted(set(state_dict) - set(key_map))
    if missing or unexpected:
        raise BadCheckpoint(
            f"{source} does not hold this OpenCLIP architecture's weights: "
            f"{len(missing)} missing (e.g. {missing[:3]}) and {len(unexpected)} unexpected (e.g. {unexpected[:3]})."
        )
    mapped = {}
    for src, dst in key_map.items():
        w = state_dict[src]
        if dst == "logit_scale":
            w = w.reshape(ours[dst].shape)  # stored as a scalar or as shape (1,)
        if w.shape != ours[dst].shape:
            raise BadCheckpoint(f"{source}: {src} has shape {tuple(w.shape)} but {dst} needs {tuple(ours[dst].shape)}.")
        mapped[dst] = w
    net.load_state_dict(mapped, strict=True)



# --- The model behind vlp's protocol ----------------------------------------------------------


class CLIPModel(ModelBase):
    """OpenCLIP weights in vlp's layers, behind the model protocol.

    It embeds, compares and classifies; it cannot caption or answer (no decoder), and has no
    image–text matching head: `match` is a squashed cosine, not a trained probability.
    """

    capabilities = Capabilities(caption=False, answer=False, match="cosine", embed=True, attention=True)
    default_template = "a photo of a {}."

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

    def vision_shape(self) -> tuple[int, int]:
        return self.net.vision.config.layers, self.net.vision.config.heads

    def _pixels(self, images) -> torch.Tensor:
        return preprocess(images, self.net.vision.config).to(self.device)

    def _ids(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.device)

    def embed_images(self, images) -> np.ndarray:
        """Images → float32 (N, embed_dim), L2-normalised rows."""
        return self.embed_in_batches(list(images), lambda chunk: self.net.encode_image(self._pixels(chunk)), BATCH)

    def embed_texts(self, texts) -> np.ndarray:
        """Texts → float32 (N, embed_dim), L2-normalised rows."""
        return self.embed_in_batches(check_texts(texts), lambda chunk: self.net.encode_text(self._ids(chunk)), BATCH)

    def logit_scale(self) -> float:
        return float(self.net.logit_scale.detach().exp())

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
        return (1 / (1 + np.exp(-self.logit_scale() * (cos - MATCH_THRESHOLD)))).astype(np.float32)

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
                layers = self.net.text(ids, need_weights=True).attentions
            n = int((ids[0] == self.net.text.config.eos_id).int().argmax()) + 1  # through the end token
            maps.tokens = [self.tokenizer.decode([i]).strip() for i in ids[0, :n].tolist()]
            maps.text = [a[0, :, :n, :n].float().cpu().numpy() for a in layers]
        return maps
