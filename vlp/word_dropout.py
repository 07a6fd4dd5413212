"""Word dropout on the decoder's input: the remedy for composition that lesson 7 measures.

vlp-tiny captions a yellow square "a large yellow circle": no training caption ever followed
"yellow" with "square", and after the colour word the decoder trusts that prior more than the
image. Hide the colour words from what the decoder *reads* ([UNK] in their place), in training
for a share of them and always while it writes a caption, and the next word, the shape, has to
come from the image: the decoder can no longer condition the shape on the colour. The targets
keep every word, so it still learns to write the colours. (Word dropout: Bowman et al., 2016,
"Generating sentences from a continuous space", where it makes a decoder lean on its input code
rather than on the words before.)

    reads = hiding(tokenizer, world.COLORS)                 # colour ids → [UNK]
    caption_step(net, optimizer, batch, reads, share=0.5)   # fine-tune
    captions(net, tokenizer, pixels, reads)                 # write, reading colours as [UNK]
"""
from __future__ import annotations

import torch

from vlp.generate import generate
from vlp.model import VLP, Batch
from vlp.tokenizer import Tokenizer


def hiding(tokenizer: Tokenizer, words) -> torch.Tensor:
    """(vocab,) what the decoder reads for each id: the id itself, but [UNK] for each of `words`."""
    reads = torch.arange(len(tokenizer))
    for word in words:
        (i,) = tokenizer.encode(word)
        reads[i] = tokenizer.unk_id
    return reads


def drop_words(ids: torch.Tensor, reads: torch.Tensor, share: float, generator=None) -> torch.Tensor:
    """`ids` with each token that `reads` hides replaced by what it reads, with probability `share`."""
    hidden = reads[ids] != ids
    drop = torch.rand(ids.shape, generator=generator) < share
    return torch.where(hidden & drop, reads[ids], ids)


def caption_step(net: VLP, optimizer, batch: Batch, reads: torch.Tensor | None = None, share: float = 0.5) -> float:
    """One optimiser step of the captioning loss; with `reads`, the decoder reads each hidden word
    as `reads` says with probability `share`, and still predicts every word."""
    ids = batch.captions
    image = net.encode_image(batch.pixels).tokens
    seen = None if reads is None else drop_words(ids, reads, share)
    loss = net.lm_loss(ids, image, ids != net.pad_id, reads=seen)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def captions(net: VLP, tokenizer: Tokenizer, pixels: torch.Tensor, reads: torch.Tensor | None = None,
             max_words: int = 30) -> list[str]:
    """Greedy captions of normalised `pixels`; with `reads`, the decoder reads what it wrote that
    way (e.g. its colour words as [UNK])."""
    tokens = net.encode_image(pixels).tokens
    ids = generate(net.decoder, tokens, [[tokenizer.bos_id]] * len(pixels), tokenizer.eos_id, tokenizer.pad_id,
                   max_words, reads=reads)
    return [tokenizer.decode(row) for row in ids]
