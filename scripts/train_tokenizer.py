"""Train the bundled model's Korean BPE tokenizer, laid out like KoGPT2's tokenizer.json.

    python scripts/train_tokenizer.py --data ../shared/data/reviews_unlabeled.txt --out runs/bundled/tokenizer

KoGPT2 uses a SentencePiece-style BPE: words are prefixed with "▁" (Metaspace) rather than
GPT-2's byte-level "Ġ", and the special tokens come first in the vocabulary. We keep both, so
the bundled model goes through exactly the code path KoGPT2 takes.
"""
import argparse
import os
import unicodedata

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# KoGPT2's special tokens, in KoGPT2's id order (0..6).
SPECIAL_TOKENS = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"]


def jamo_decoder():
    """NFKC turns compatibility jamo (ㅋ, ㅠ: everywhere in reviews) into conjoining jamo (ᄏ, ᅲ) that
    render badly alone; map them back when decoding so "ㅋㅋ" round-trips."""
    pairs = {}
    for code in range(0x3131, 0x318F):
        c = chr(code)
        n = unicodedata.normalize("NFKC", c)
        if n != c and len(n) == 1:
            pairs.setdefault(n, c)
    steps = [decoders.Replace(n, c) for n, c in pairs.items()]
    return decoders.Sequence(steps + [decoders.Metaspace(replacement="▁", prepend_scheme="always")])


def build_tokenizer(lines, vocab_size):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = jamo_decoder()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        limit_alphabet=2000,  # Hangul syllables are many; rarer ones fall to <unk>
        show_progress=True,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def fix_decoder(path):
    """Give an already trained tokenizer.json the jamo-restoring decoder (ids unchanged)."""
    tok = Tokenizer.from_file(path)
    tok.decoder = jamo_decoder()
    tok.save(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/reviews_unlabeled.txt")
    p.add_argument("--out", default="runs/bundled/tokenizer")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--fix-decoder", action="store_true", help="only update the decoder of --out's tokenizer.json")
    args = p.parse_args()
    if args.fix_decoder:
        return fix_decoder(os.path.join(args.out, "tokenizer.json"))
    with open(args.data, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    tok = build_tokenizer(lines, args.vocab_size)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    unk = tok.token_to_id("<unk>")
    n_unk = sum(tok.encode(line).ids.count(unk) for line in lines[:20000])
    n_tok = sum(len(tok.encode(line).ids) for line in lines[:20000])
    print(f"vocab {tok.get_vocab_size()}, <unk> rate on 20k reviews: {n_unk / n_tok:.4%}, "
          f"tokens per review: {n_tok / 20000:.1f}")


if __name__ == "__main__":
    main()
