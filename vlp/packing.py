"""Several texts in one decoder sequence: the rows that read the same image, packed.

Training decodes about seven texts per image (a caption, four questions, two ITM pairs), most
of them short. Decoded one text per row, each row pads to the longest text and reads its own
copy of its image's keys and values. Packed, an image's texts follow one another in one
sequence that reads the image once, with two rules that keep each text on its own:
- a token sees the earlier tokens of its own text only (the decoder's `texts`, with the causal mask);
- positions restart at 0 with each text.
So every text gets exactly the result it would get alone (`tests/test_recipe.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# Longest packed sequence, in tokens: an image's texts that need more go on in another pack.
# Attention grows with its square; the recipe's ≈ 75 tokens an image (at most ≈ 100) fit in one.
PACK_LENGTH = 128


@dataclass
class Packed:
    """Texts (R, L) packed into sequences (P, S), and the way back."""

    ids: torch.Tensor  # (P, S) right-padded with the pad id
    positions: torch.Tensor  # (P, S) each token's position in its own text
    texts: torch.Tensor  # (P, S) which text each token belongs to; -1 on padding
    images: torch.Tensor  # (P,) the image each sequence reads
    slots: torch.Tensor  # (R, L) where each text's token went, as an index into P·S
    real: torch.Tensor  # (R, L) the texts' real tokens

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, S, …) per packed token → (R, L, …) per text token; zeros where a text has none."""
        flat = x.flatten(0, 1)[self.slots]  # (R, L, …)
        return flat * self.real.view(*self.real.shape, *[1] * (x.dim() - 2)).to(flat.dtype)


def pack(ids: torch.Tensor, real: torch.Tensor, images: torch.Tensor, pad_id: int,
         length: int = PACK_LENGTH) -> Packed:
    """Pack the texts `ids` (R, L), right-padded (`real` marks their tokens), text i reading image
    images[i], into sequences of at most `length` tokens (or the longest text), each reading one
    image. Texts go in order of image, then of row; a text that no longer fits starts a new one."""
    rows, width = ids.shape
    lengths = real.sum(dim=1)
    limit = max(length, int(lengths.max()) if rows else 1)
    order = torch.sort(images, stable=True).indices
    # which pack and where in it: a short loop over the rows' lengths, on the CPU
    pack_of, offset, pack_images = [0] * rows, [0] * rows, []
    used = limit + 1  # the current pack's tokens; over the limit at first, so the first text opens one
    last_image, span = None, 1  # span: the longest pack
    for r, n, image in zip(order.tolist(), lengths[order].tolist(), images[order].tolist()):
        if image != last_image or used + n > limit:
            pack_images.append(image)
            used, last_image = 0, image
        pack_of[r], offset[r] = len(pack_images) - 1, used
        used += n
        span = max(span, used)
    device = ids.device
    t = torch.arange(width, device=device)
    slots = (torch.tensor(pack_of, device=device)[:, None] * span
             + torch.tensor(offset, device=device)[:, None] + t)  # (R, L)
    slots = torch.where(real, slots, 0)  # padding reads slot 0; `unpack` zeroes it
    n_packs = len(pack_images)
    at = slots[real]
    packed_ids = ids.new_full((n_packs * span,), pad_id).index_put_((at,), ids[real])
    positions = torch.zeros(n_packs * span, dtype=torch.long, device=device).index_put_((at,), t.expand(rows, width)[real])
    texts = torch.full((n_packs * span,), -1, dtype=torch.long, device=device)
    texts = texts.index_put_((at,), torch.arange(rows, device=device)[:, None].expand(rows, width)[real])
    return Packed(packed_ids.view(n_packs, span), positions.view(n_packs, span), texts.view(n_packs, span),
                  torch.tensor(pack_images, dtype=torch.long, device=device), slots, real)
