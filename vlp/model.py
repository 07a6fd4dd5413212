"""The VLP network: one image encoder, one text encoder, one multimodal decoder, four objectives.

- ITC (image–text contrastive, as CLIP): pooled image and text embeddings, InfoNCE both ways.
- ITM (image–text matching, as ALBEF/BLIP): the decoder reads a text against an image and a
  binary head at the end token says match / no match; negatives are mined from the ITC
  similarities of the batch (hard negatives).
- Captioning: the decoder predicts the caption word by word, cross-attending to the image.
- VQA: the question is a prefix, the answer is generated after [SEP]; loss on the answer only.

The public API around this network (load, caption, answer, …) is in `vlp/api.py`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlp.text import DecoderConfig, MultimodalDecoder, TextConfig, TextEncoder, TextOutput, at_end_token
from vlp.vision import VisionConfig, VisionOutput, VisionTransformer


@dataclass
class VLPConfig:
    vision: VisionConfig  # the image encoder
    text: TextConfig  # the text encoder, for contrastive learning
    decoder: DecoderConfig  # the multimodal decoder: captions, answers, image–text matching

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VLPConfig":
        vision = dict(d["vision"], mean=tuple(d["vision"]["mean"]), std=tuple(d["vision"]["std"]))
        return cls(VisionConfig(**vision), TextConfig(**d["text"]), DecoderConfig(**d["decoder"]))


# Named sizes: width, depth of each tower. vlp-tiny pretrains in minutes on a laptop CPU.
SIZES = {
    "tiny": dict(width=128, heads=4, vision_layers=4, text_layers=2, decoder_layers=3, embed_dim=128),
    "small": dict(width=256, heads=8, vision_layers=6, text_layers=4, decoder_layers=4, embed_dim=256),
    # for lessons that compare several short trainings in one class
    "micro": dict(width=64, heads=2, vision_layers=2, text_layers=1, decoder_layers=2, embed_dim=64),
}


def config_for(size: str, vocab_size: int, eos_id: int, image_size: int = 64, patch_size: int = 8) -> VLPConfig:
    s = SIZES[size]
    return VLPConfig(
        vision=VisionConfig(
            image_size=image_size, patch_size=patch_size, width=s["width"], layers=s["vision_layers"],
            heads=s["heads"], embed_dim=s["embed_dim"],
        ),
        text=TextConfig(
            vocab_size=vocab_size, width=s["width"], layers=s["text_layers"], heads=s["heads"],
            embed_dim=s["embed_dim"], eos_id=eos_id,
        ),
        decoder=DecoderConfig(
            vocab_size=vocab_size, width=s["width"], layers=s["decoder_layers"], heads=s["heads"],
            image_width=s["width"],
        ),
    )


@dataclass
class Batch:
    """One training batch; every tensor on the model's device.

    Texts are [BOS] … [EOS], right-padded with [PAD] (id 0 in vlp's tokenizer).
    """

    pixels: torch.Tensor  # (B, 3, H, W) preprocessed images
    texts: torch.Tensor  # (B, L) texts describing each image: captions, paraphrases, mentions
    positives: torch.Tensor  # (B, B) bool: ITC targets, text i is a description of image j
    true_of: torch.Tensor  # (B, B) bool: ITM truth, everything text i names is in image j
    captions: torch.Tensor  # (B, L) canonical captions, the captioning targets
    wrong_texts: torch.Tensor  # (B, L) a near miss per image: one attribute or the relation changed
    qa: torch.Tensor  # (Q, L2) [BOS] question [SEP] answer [EOS]; several questions per image
    answer_mask: torch.Tensor  # (Q, L2) bool: the answer and [EOS] tokens, the targets
    qa_images: torch.Tensor  # (Q,) the image each question is about


OBJECTIVES = ("itc", "itm", "caption", "vqa")  # what `VLP.forward` can compute, by name


class VLP(nn.Module):
    def __init__(self, config: VLPConfig, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.visual = VisionTransformer(config.vision)
        self.text = TextEncoder(config.text)
        self.decoder = MultimodalDecoder(config.decoder)
        self.itm_head = nn.Linear(config.decoder.width, 2)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    # --- the towers -------------------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor, need_weights: bool = False) -> VisionOutput:
        """pixels (B, 3, H, W), preprocessed."""
        return self.visual(pixels, need_weights)

    def encode_text(self, ids: torch.Tensor, need_weights: bool = False) -> TextOutput:
        """ids (B, T), right-padded with the pad id."""
        return self.text(ids, ids != self.pad_id, need_weights)

    def match_logits(self, ids: torch.Tensor, image_tokens: torch.Tensor,
                     image_rows: torch.Tensor | None = None, projected: list | None = None) -> torch.Tensor:
        """(B, 2) no-match / match scores, read from the decoder at each text's end token.
        `image_rows`: text i against image image_rows[i]; `projected`: see `decode_in_groups`."""
        rows, ends = zip(*[(rows, at_end_token(out.hidden, ids[rows, :length], self.config.text.eos_id))
                           for rows, length, out in self.decode_in_groups(ids, ids != self.pad_id, image_tokens,
                                                                          image_rows, projected)])
        order = torch.cat(rows).argsort()  # back to the rows' own order
        return self.itm_head(torch.cat(ends)[order])  # (B, 2)

    # --- the objectives ---------------------------------------------------------------------
    def forward(self, batch: Batch, itm_negatives: int = 3, objectives=OBJECTIVES) -> dict[str, torch.Tensor]:
        """The losses of `objectives` (all four by default) on one batch, as a dict of named terms
        (the trainer weighs them); an objective left out is not computed.

        `itm_negatives`: negative pairs per image for ITM, 3 or 1 (see `itm_loss`).
        """
        losses = {}
        image = self.encode_image(batch.pixels)
        if "itc" in objectives or "itm" in objectives:  # ITM mines its hard negatives with ITC's similarities
            image_emb = F.normalize(image.embedding.float(), dim=-1)  # (B, embed_dim)
            with torch.set_grad_enabled(torch.is_grad_enabled() and "itc" in objectives):
                text_emb = F.normalize(self.encode_text(batch.texts).embedding.float(), dim=-1)  # (B, embed_dim)
        if "itc" in objectives:
            losses["itc"] = itc_loss(image_emb, text_emb, batch.positives, self.logit_scale.exp().clamp(max=100))
        # the decoder's passes (ITM pairs, captions, questions) read one projection of the images
        projected = self.decoder.project_images(image.tokens) if {"itm", "caption", "vqa"} & set(objectives) else None
        if "itm" in objectives:
            with torch.no_grad():
                sim = (image_emb @ text_emb.T).float()  # (B images, B texts)
            losses["itm"], losses["itm_acc"] = self.itm_loss(batch, image.tokens, sim, itm_negatives, projected)
        if "caption" in objectives:
            losses["caption"] = self.lm_loss(batch.captions, image.tokens, batch.captions != self.pad_id,
                                             projected=projected)
        if "vqa" in objectives:
            losses["vqa"] = self.lm_loss(batch.qa, image.tokens, batch.answer_mask, batch.qa_images, projected=projected)
        return losses

    def decode_in_groups(self, ids: torch.Tensor, real: torch.Tensor, image_tokens: torch.Tensor,
                         image_rows: torch.Tensor | None = None, projected: list | None = None):
        """The decoder over `ids` (B, L) in groups of rows of similar length (`length_groups` of
        `real`, the real tokens): yields (rows, length, DecoderOutput) per group. Row i reads image
        image_rows[i] (default: image i), its keys and values from `projected`
        (`MultimodalDecoder.project_images` of `image_tokens`, made here when not given)."""
        projected = projected or self.decoder.project_images(image_tokens)
        images = torch.arange(len(ids), device=ids.device) if image_rows is None else image_rows
        for rows, length in length_groups(real):
            caches = self.decoder.caches_reading(projected, images[rows])
            yield rows, length, self.decoder(ids[rows, :length], image_tokens, caches=caches)

    def lm_loss(self, ids: torch.Tensor, image_tokens: torch.Tensor, predict: torch.Tensor,
                image_rows: torch.Tensor | None = None, reads: torch.Tensor | None = None,
                projected: list | None = None) -> torch.Tensor:
        """Next-token cross-entropy where `predict` marks the tokens to be predicted; row i reads
        image image_rows[i] (default: image i). `reads`: what the decoder reads in place of
        `ids` (default: `ids`), e.g. with some words hidden (`vlp.word_dropout`). `projected`:
        see `decode_in_groups`."""
        # position t predicts token t + 1
        inputs = ids if reads is None else reads
        targets = ids[:, 1:].masked_fill(~predict[:, 1:], -100)  # (B, L − 1); -100: not a target
        total = 0.0
        for rows, length, out in self.decode_in_groups(inputs[:, :-1], ids[:, :-1] != self.pad_id, image_tokens,
                                                       image_rows, projected):
            total = total + F.cross_entropy(out.logits.flatten(0, 1).float(), targets[rows, :length].flatten(),
                                            ignore_index=-100, reduction="sum")
        return total / (targets != -100).sum()  # the mean over every target token of the batch

    def itm_loss(
        self, batch: Batch, image_tokens: torch.Tensor, sim: torch.Tensor, negatives: int = 3,
        projected: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's text as a positive pair, and `negatives` negative pairs per image.

        Hard negatives are sampled in proportion to softmax(similarity) over the pairs that are
        not true (`true_of`), so the head learns from the confusable ones, as ALBEF does; the
        world's near-miss captions differ from the truth in a single detail.
        - 3: per image a hard negative text, per text a hard negative image, and the near miss
          (about 4 decoder rows per image);
        - 1: the near miss for even images, the hard negative text for odd ones (2 rows per
          image: ITM is the decoder's largest pass, so this halves it).
        """
        b = sim.shape[0]  # sim[i, j]: image i against text j
        wrong = ~batch.true_of  # wrong[j, i]: text j is false of image i
        has_neg = wrong.any(dim=0) & wrong.any(dim=1)
        weights_t = (sim * 10).exp() * wrong.T  # (B images, B texts): image i → candidate texts j
        weights_t[~has_neg] = 1.0
        neg_text = torch.multinomial(weights_t, 1).squeeze(1)  # (B,)
        if negatives == 3:
            weights_i = (sim.T * 10).exp() * wrong  # (B texts, B images): text j → candidate images i
            weights_i[~has_neg] = 1.0
            neg_image = torch.multinomial(weights_i, 1).squeeze(1)  # (B,)
            keep = has_neg
            # pairs: B positives, K image–wrong text, K wrong image–text, B near misses (K = keep.sum())
            ids = _cat_padded([batch.texts, batch.texts[neg_text][keep], batch.texts[keep], batch.wrong_texts],
                              self.pad_id)
            images = torch.arange(b, device=ids.device)
            rows = torch.cat([images, images[keep], neg_image[keep], images])
        elif negatives == 1:
            hard, near = _cat_padded([batch.texts[neg_text], batch.wrong_texts], self.pad_id).split(b)
            use_hard = (torch.arange(b, device=hard.device) % 2 == 1) & has_neg  # (B,)
            negative = torch.where(use_hard[:, None], hard, near)  # (B, L)
            ids = _cat_padded([batch.texts, negative], self.pad_id)  # B positives, then B negatives
            rows = torch.arange(b, device=ids.device).repeat(2)
        else:
            raise ValueError(f"itm_negatives is 3 or 1, not {negatives}")
        labels = torch.zeros(len(ids), dtype=torch.long, device=ids.device)
        labels[:b] = 1
        logits = self.match_logits(ids, image_tokens, rows, projected).float()
        n_pos, n_neg = b, len(labels) - b
        # positives and negatives weigh the same, whatever their counts
        weight = torch.tensor([n_pos / n_neg, 1.0], device=ids.device)
        loss = F.cross_entropy(logits, labels, weight=weight)
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, acc.detach()


def itc_loss(image_emb, text_emb, positives, scale) -> torch.Tensor:
    """Symmetric InfoNCE; when several texts in the batch fit an image, each is a target."""
    logits = scale * image_emb @ text_emb.T  # (B images, B texts)
    pos = positives.T.float()  # positives[t, i]: text t describes image i → targets (images, texts)
    i2t = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(pos.T / pos.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


# Training's decoder rows (captions, questions, ITM texts) run in this many groups of similar
# length, each cut to its own longest row: most rows are far shorter than the longest one (the
# questions: 11 tokens on average, padded to 19), and a causal decoder's right padding changes
# nothing before it, so the results are those of one padded pass (`tests/test_recipe.py`).
# Two groups: ≈ 4 % faster a recipe step at batch 64 (1 thread, bf16; 8 rounds in turns,
# 106 against 102 samples/s); three or four: no faster, as each group is a pass of its own.
LENGTH_GROUPS = 2


def length_groups(real: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """(rows, length) of each group: `real` (B, L) marks the right-padded rows' real tokens; the
    rows sorted by length are cut into `LENGTH_GROUPS` parts, each with the length of its longest row."""
    lengths = real.sum(dim=1)  # (B,)
    parts = lengths.argsort().tensor_split(max(1, min(LENGTH_GROUPS, len(lengths))))
    return [(rows, int(lengths[rows].max())) for rows in parts if len(rows)]


def _cat_padded(rows: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    """Stack (n_i, L_i) id batches of different lengths, right-padding to the longest."""
    length = max(r.shape[1] for r in rows)
    return torch.cat([F.pad(r, (0, length - r.shape[1]), value=pad_id) for r in rows])
