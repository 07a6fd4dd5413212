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

from vlp.packing import pack
from vlp.parallel import every_process
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
    positives: torch.Tensor  # (B, B) bool: ITC targets, text i is a description of image j;
    # (B × P, B × P) over the batches of P data-parallel processes (vlp.data.WorldBatches' team)
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
                     image_rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2) no-match / match scores, read from the decoder at each text's end token.
        `image_rows`: text i against image image_rows[i] (default: image i)."""
        hidden, _ = self.read(ids, ids != self.pad_id, image_tokens, image_rows)
        return self.itm_head(at_end_token(hidden, ids, self.config.text.eos_id))  # (B, 2)

    # --- the objectives ---------------------------------------------------------------------
    def forward(self, batch: Batch, itm_negatives: int = 3, objectives=OBJECTIVES) -> dict[str, torch.Tensor]:
        """The losses of `objectives` (all four by default) on one batch, as a dict of named terms
        (the trainer weighs them); an objective left out is not computed.

        `itm_negatives`: negative pairs per image for ITM, 3 or 1 (see `itm_pairs`).
        """
        losses = {}
        image = self.encode_image(batch.pixels)
        if "itc" in objectives or "itm" in objectives:  # ITM mines its hard negatives with ITC's similarities
            image_emb = F.normalize(image.embedding.float(), dim=-1)  # (B, embed_dim)
            with torch.set_grad_enabled(torch.is_grad_enabled() and "itc" in objectives):
                text_emb = F.normalize(self.encode_text(batch.texts).embedding.float(), dim=-1)  # (B, embed_dim)
        if "itc" in objectives:
            images, texts = image_emb, text_emb
            if len(batch.positives) > len(batch.texts):  # the targets span every process's batch
                images, texts = every_process(image_emb), every_process(text_emb)
            losses["itc"] = itc_loss(images, texts, batch.positives, self.logit_scale.exp().clamp(max=100))
        if not {"itm", "caption", "vqa"} & set(objectives):
            return losses
        # the decoder's texts (ITM pairs, captions, questions) in one pass: see `read`
        reads = {}  # objective → (the ids the decoder reads, the image of each row)
        if "itm" in objectives:
            with torch.no_grad():
                sim = (image_emb @ text_emb.T).float()  # (B images, B texts)
            itm_ids, itm_rows, itm_labels = self.itm_pairs(batch, sim, itm_negatives)
            reads["itm"] = (itm_ids, itm_rows)
        if "caption" in objectives:
            reads["caption"] = (batch.captions[:, :-1], None)
        if "vqa" in objectives:
            reads["vqa"] = (batch.qa[:, :-1], batch.qa_images)
        out = self.read_together(reads, image.tokens)
        if "itm" in objectives:
            logits = self.itm_head(at_end_token(out["itm"][0], itm_ids, self.config.text.eos_id)).float()
            losses["itm"], losses["itm_acc"] = itm_loss(logits, itm_labels)
        if "caption" in objectives:
            losses["caption"] = next_token_loss(out["caption"][1], batch.captions, batch.captions != self.pad_id)
        if "vqa" in objectives:
            losses["vqa"] = next_token_loss(out["vqa"][1], batch.qa, batch.answer_mask)
        return losses

    def read(self, ids: torch.Tensor, real: torch.Tensor, image_tokens: torch.Tensor,
             image_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder over the texts `ids` (R, L), right-padded (`real` marks their tokens), text i
        reading image image_rows[i] (default: image i): (hidden (R, L, width), logits (R, L, vocab)).

        The texts of each image are packed into one sequence (`vlp.packing`) that reads the
        image's keys and values, projected once for all its texts: each text gets the result it
        would get alone, in one pass over fewer, fuller rows."""
        projected = self.decoder.project_images(image_tokens)
        images = torch.arange(len(ids), device=ids.device) if image_rows is None else image_rows
        packed = pack(ids, real, images, self.pad_id)
        caches = self.decoder.caches_reading(projected, packed.images)
        out = self.decoder(packed.ids, image_tokens, positions=packed.positions, caches=caches, texts=packed.texts)
        return packed.unpack(out.hidden), packed.unpack(out.logits)

    def read_together(self, reads: dict, image_tokens: torch.Tensor) -> dict:
        """`read` for several sets of texts about the same images in one pass: `reads` maps a
        name to (ids (R, L), image rows or None); returns the name → (hidden, logits) of each."""
        ids = _cat_padded([i for i, _ in reads.values()], self.pad_id)
        rows = torch.cat([torch.arange(len(i), device=i.device) if r is None else r for i, r in reads.values()])
        hidden, logits = self.read(ids, ids != self.pad_id, image_tokens, rows)
        out, start = {}, 0
        for name, (i, _) in reads.items():
            n, length = i.shape
            out[name] = hidden[start:start + n, :length], logits[start:start + n, :length]
            start += n
        return out

    def lm_loss(self, ids: torch.Tensor, image_tokens: torch.Tensor, predict: torch.Tensor,
                image_rows: torch.Tensor | None = None, reads: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token cross-entropy where `predict` marks the tokens to be predicted; row i reads
        image image_rows[i] (default: image i). `reads`: what the decoder reads in place of
        `ids` (default: `ids`), e.g. with some words hidden (`vlp.word_dropout`)."""
        inputs = (ids if reads is None else reads)[:, :-1]  # position t predicts token t + 1
        _, logits = self.read(inputs, ids[:, :-1] != self.pad_id, image_tokens, image_rows)
        return next_token_loss(logits, ids, predict)

    def itm_pairs(self, batch: Batch, sim: torch.Tensor, negatives: int = 3
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each image's text as a positive pair, and `negatives` negative pairs per image: the
        texts (N, L), the image each is paired with (N,), and the labels (N,), 1 for a match.

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
        return ids, rows, labels


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the match logits (N, 2) against `labels`, positives and negatives weighing
    the same whatever their counts; and the accuracy (detached)."""
    n_pos = int(labels.sum())
    weight = torch.tensor([n_pos / (len(labels) - n_pos), 1.0], device=logits.device)
    loss = F.cross_entropy(logits, labels, weight=weight)
    return loss, (logits.argmax(-1) == labels).float().mean().detach()


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor, predict: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of `logits` (B, L − 1, vocab), read from ids[:, :-1], against the
    next tokens ids[:, 1:] where `predict` (B, L) marks them as targets."""
    targets = ids[:, 1:].masked_fill(~predict[:, 1:], -100)  # (B, L − 1); -100: not a target
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def itc_loss(image_emb, text_emb, positives, scale) -> torch.Tensor:
    """Symmetric InfoNCE; when several texts in the batch fit an image, each is a target."""
    logits = scale * image_emb @ text_emb.T  # (B images, B texts)
    pos = positives.T.float()  # positives[t, i]: text t describes image i → targets (images, texts)
    i2t = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(pos.T / pos.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


def _cat_padded(rows: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    """Stack (n_i, L_i) id batches of different lengths, right-padding to the longest."""
    length = max(r.shape[1] for r in rows)
    return torch.cat([F.pad(r, (0, length - r.shape[1]), value=pad_id) for r in rows])
