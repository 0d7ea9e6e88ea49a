"""FUDGE's future discriminator: P(label | prefix) for every prefix of a token sequence.

A GRU over the language model's own token ids (Yang & Klein, NAACL 2021, used an LSTM). It is
trained on prefixes of labelled reviews: every prefix of a review carries the review's label, so
one forward pass over a padded batch trains all prefixes at once.

At generation time FUDGE asks "if the next token were v, how likely is the label?" for the top
200 candidates v of a step. A GRU makes that cheap: the prefix is run once, and each candidate is
one more GRU cell step whose input half (W_ih · embedding(v)) does not depend on the prefix, so
the 200 candidates cost one gather and a few element-wise ops (`candidate_log_probs`).

The discriminator belongs to one tokenizer; `tokenizer_fingerprint` names it, and `check_tokenizer`
refuses any other (ids from another vocabulary would be silently meaningless).
"""
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

FUDGE_DIR = Path(__file__).resolve().parent.parent / "fudge_discriminator"  # 긍정 / 부정 (NSMC)
TOXICITY_DIR = Path(__file__).resolve().parent.parent / "fudge_toxicity"  # 유해 / 무해 (BEEP!), for --control 무해


class TokenizerMismatchError(ValueError):
    """A discriminator used with a model whose tokenizer is not the one it was trained for."""


def tokenizer_fingerprint(tokenizer):
    """A short hash of the vocabulary (token -> id): equal only for the same tokenizer."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]


class FutureDiscriminator(nn.Module):
    def __init__(self, vocab_size, labels=("부정", "긍정"), n_embd=128, n_hidden=192, pad_token_id=3,
                 tokenizer=None):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, labels=list(labels), n_embd=n_embd, n_hidden=n_hidden,
                           pad_token_id=pad_token_id, tokenizer=tokenizer or {})
        self.labels = list(labels)
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.gru = nn.GRU(n_embd, n_hidden, batch_first=True)
        self.head = nn.Linear(n_hidden, len(labels))

    def forward(self, ids):
        """(B, T) token ids -> (B, T, n_labels) logits; position t sees tokens 0..t."""
        h, _ = self.gru(self.wte(ids))
        return self.head(h)

    def last_hidden(self, ids):
        """(B, T) -> (B, H): the GRU state after the whole prefix."""
        _, h = self.gru(self.wte(ids))
        return h[0]

    def candidate_log_probs(self, ids, candidates):
        """log P(label | ids + v) for each candidate v: (B, T), (B, K) -> (B, K, n_labels).

        One GRU cell step per candidate, written out (PyTorch's GRU equations) so that the hidden
        half is computed once per row and the input half is a lookup per candidate."""
        h = self.last_hidden(ids)                                              # (B, H)
        w_ih, w_hh, b_ih, b_hh = self.gru.weight_ih_l0, self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0
        gi = F.linear(self.wte(candidates), w_ih, b_ih)                        # (B, K, 3H)
        gh = F.linear(h, w_hh, b_hh).unsqueeze(1)                              # (B, 1, 3H)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h_next = (1 - z) * n + z * h.unsqueeze(1)                              # (B, K, H)
        return F.log_softmax(self.head(h_next), dim=-1)

    def label_index(self, label):
        if label not in self.labels:
            raise ValueError(f"'{label}'은(는) 이 판별기의 레이블이 아닙니다. 쓸 수 있는 레이블: {', '.join(self.labels)}")
        return self.labels.index(label)

    def check_tokenizer(self, tokenizer):
        """Raise TokenizerMismatchError unless `tokenizer` is the one this discriminator was trained on."""
        want = self.config["tokenizer"]
        got = tokenizer_fingerprint(tokenizer)
        if want.get("fingerprint") != got:
            raise TokenizerMismatchError(
                f"FUDGE 판별기는 토크나이저 '{want.get('name', '?')}'(어휘 {want.get('vocab_size', '?')}개, 지문 "
                f"{want.get('fingerprint', '?')})로 학습했는데, 지금 모델의 토크나이저는 다릅니다(어휘 {len(tokenizer)}개, "
                f"지문 {got}). 내장 모델(--model bundled)이나 그것을 미세조정한 모델을 쓰거나, 이 모델의 토크나이저로 "
                f"판별기를 다시 학습하세요: python scripts/train_fudge_discriminator.py --model <모델>")

    def save_pretrained(self, folder):
        """config.json + model.safetensors (float16: half the size, same decisions), written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(folder / "model.safetensors.tmp"))
        os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
        (folder / "config.json.tmp").write_text(json.dumps(self.config, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(folder / "config.json.tmp", folder / "config.json")

    @classmethod
    def from_pretrained(cls, folder=FUDGE_DIR):
        folder = Path(folder)
        if not (folder / "config.json").exists():
            task = " --task toxicity" if folder.name == TOXICITY_DIR.name else ""
            raise FileNotFoundError(f"FUDGE 판별기 폴더에 config.json이 없습니다: {folder}. "
                                    f"python scripts/train_fudge_discriminator.py{task}로 만드세요.")
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            model = cls(**config)
            state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
            model.load_state_dict(state)
        except Exception as e:  # a truncated download or a hand-edited file: say which and how to rebuild
            task = " --task toxicity" if folder.name == TOXICITY_DIR.name else ""
            raise FileNotFoundError(f"FUDGE 판별기 파일을 읽을 수 없습니다({folder}: {type(e).__name__}: {e}). "
                                    f"python scripts/train_fudge_discriminator.py{task} --out {folder}로 다시 "
                                    f"만드세요.") from None
        return model.eval()


_cache = {}


def load_discriminator(folder=FUDGE_DIR):
    """The shipped discriminator, loaded once per process (it is read-only at generation time)."""
    key = str(Path(folder).resolve())
    if key not in _cache:
        # the first request may come from inside generate's inference mode: tensors made there could never be
        # used outside it again, and this copy is shared by every later call (frozen: no gradients needed)
        with torch.inference_mode(False):
            _cache[key] = FutureDiscriminator.from_pretrained(folder).requires_grad_(False)
    return _cache[key]
