"""vlp's tokenizer: whole words over a fixed vocabulary, saved as a `tokenizers` tokenizer.json."""
from __future__ import annotations

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers

PAD, BOS, EOS, SEP, UNK = "[PAD]", "[BOS]", "[EOS]", "[SEP]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, SEP, UNK)

# What is normalised, not learned: case, a sentence's final punctuation ("?", ".", "!" or none),
# British spelling and two contractions say nothing about a scene, so every text is mapped to one
# form before a word is read; the model never spends training on them, and a checkpoint reads
# "What colour is the square!" exactly as "what color is the square". Synonyms (big/large,
# over/above, object/shape, "left of"/"to the left of") are learned instead: they are words of
# the vocabulary that `python -m vlp words` lists and whose meaning the model shows it has learned.
# Checkpoints keep the normaliser they were saved with, so older ones read text as before.
REWRITES = (("\u2019", "'"), ("what's", "what is"), ("where's", "where is"), ("colour", "color"))
FINAL_PUNCTUATION = r"[\s?.!]+$"
_NORMALISER = normalizers.Sequence(
    [normalizers.NFKC(), normalizers.Lowercase(), *(normalizers.Replace(a, b) for a, b in REWRITES),
     normalizers.Replace(Regex(FINAL_PUNCTUATION), "")])


def normalise(text: str) -> str:
    """`text` as a tokenizer from `Tokenizer.from_words` reads it: lower case, final punctuation
    dropped, one spelling ('what Colour is it?' → 'what color is it')."""
    return _NORMALISER.normalize_str(text)


class Tokenizer:
    """A word-level tokenizer (Hugging Face `tokenizers`): normalises (see REWRITES), splits off punctuation.

    A word outside the vocabulary becomes [UNK]; it never raises.
    """

    def __init__(self, backend: HFTokenizer):
        self.backend = backend
        self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = (
            backend.token_to_id(t) for t in SPECIALS
        )

    @classmethod
    def from_words(cls, words) -> "Tokenizer":
        vocab = {t: i for i, t in enumerate(SPECIALS)}
        for w in sorted(set(words) - set(SPECIALS)):
            vocab[w] = len(vocab)
        backend = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
        backend.normalizer = _NORMALISER
        # \w+ runs and single punctuation marks: "circle?" → "circle", "?"
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        return cls(backend)

    @classmethod
    def load(cls, path) -> "Tokenizer":
        return cls(HFTokenizer.from_file(str(path)))

    def save(self, path) -> None:
        self.backend.save(str(path))

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Word ids of `text`, no special tokens."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Text of `ids`, special tokens dropped, punctuation re-attached."""
        words = [self.backend.id_to_token(int(i)) for i in ids]
        return self.backend.decoder.decode([w for w in words if w not in SPECIALS])

    def words(self) -> list[str]:
        """Every word it knows, sorted; the special tokens left out."""
        return sorted(set(self.backend.get_vocab()) - set(SPECIALS))

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` that are not in the vocabulary, as written."""
        enc = self.backend.encode(text, add_special_tokens=False)
        return [text[a:b] for (a, b), i in zip(enc.offsets, enc.ids) if i == self.unk_id]

    def batch(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[BOS] words [EOS], truncated to `max_len`, right-padded → (ids, keep), both (B, max_len)."""
        rows = [[self.bos_id] + self.encode(t)[: max_len - 2] + [self.eos_id] for t in texts]
        ids = torch.full((len(rows), max_len), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != self.pad_id
