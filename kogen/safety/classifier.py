"""The Korean toxicity and bias classifier: the bundled Korean GPT-2 fine-tuned with two heads, averaged
with a character n-gram TF-IDF + logistic regression (weight chosen on validation data).

    hate: none / offensive / hate      -> score = P(offensive) + P(hate)
    bias: none / gender / others

Trained on the BEEP! Korean hate-speech corpus (CC BY-SA 4.0; see kogen/safety_classifier/README.md and
scripts/train_safety_classifier.py). The token and position embeddings are the bundled model's, kept
frozen while fine-tuning and not stored again: the package holds the bundled model once, and this
classifier adds only its transformer blocks and heads (under the 10 MB budget).
"""
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..decoding.discriminator import tokenizer_fingerprint
from ..models import BUNDLED_MODEL_DIR

SAFETY_DIR = Path(__file__).resolve().parent.parent / "safety_classifier"
from .beep import BIAS_LABELS, HATE_LABELS  # noqa: F401  (re-exported: the labels the heads predict)
SHARED = ("transformer.wte.weight", "transformer.wpe.weight")  # taken from the bundled model, not stored
MAX_TOKENS = 128


class ClassifierFileError(RuntimeError):
    """The classifier's files are missing, corrupt, or belong to another bundled model."""


class SafetyClassifier(nn.Module):
    def __init__(self, gpt2_config, dropout=0.1):
        super().__init__()
        from transformers import GPT2Model
        self.transformer = GPT2Model(gpt2_config)
        self.drop = nn.Dropout(dropout)
        self.hate_head = nn.Linear(gpt2_config.n_embd, len(HATE_LABELS))
        self.bias_head = nn.Linear(gpt2_config.n_embd, len(BIAS_LABELS))

    def forward(self, ids, mask):
        """(B, T) ids and attention mask -> (hate logits (B, 3), bias logits (B, 3)); mean over real tokens."""
        h = self.transformer(input_ids=ids, attention_mask=mask).last_hidden_state      # (B, T, C)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = self.drop((h * m).sum(1) / m.sum(1).clamp(min=1))
        return self.hate_head(pooled), self.bias_head(pooled)


def load_bundled_encoder():
    """(tokenizer, SafetyClassifier) initialised from the bundled Korean GPT-2 (for training)."""
    from transformers import GPT2Model
    from ..models import load_tokenizer
    base = GPT2Model.from_pretrained(str(BUNDLED_MODEL_DIR)).float()
    model = SafetyClassifier(base.config)
    model.transformer.load_state_dict(base.state_dict())
    return load_tokenizer(BUNDLED_MODEL_DIR), model


def save_classifier(model, tokenizer, tfidf, folder, weight, metrics):
    """GPT-2 blocks + heads in float16 (embeddings are the bundled model's), the TF-IDF arrays, the config;
    each file written to a temporary name first and renamed."""
    from safetensors.torch import save_file
    from . import tfidf as tfidf_io
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k not in SHARED}
    save_file(state, str(folder / "model.safetensors.tmp"))
    os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
    vec, hate_lr, bias_lr = tfidf
    tfidf_io.save(folder, vec, [hate_lr, bias_lr], ("hate", "bias"))
    config = dict(hate_labels=HATE_LABELS, bias_labels=BIAS_LABELS, max_tokens=MAX_TOKENS, gpt2_weight=weight,
                  tokenizer=dict(name="kogen bundled", fingerprint=tokenizer_fingerprint(tokenizer)),
                  shared_from_bundled=list(SHARED), metrics=metrics)
    (folder / "config.json.tmp").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(folder / "config.json.tmp", folder / "config.json")


class Classifier:
    """What scoring needs: the fine-tuned GPT-2 and its tokenizer, the TF-IDF models, the mixing weight."""

    def __init__(self, model, tokenizer, tfidf, weight, config=None):
        self.model, self.tokenizer, self.tfidf, self.weight, self.config = model, tokenizer, tfidf, weight, config


def load_classifier(folder=SAFETY_DIR):
    """A Classifier ready to score; a clear error naming the file if anything is missing or wrong."""
    from safetensors.torch import load_file
    from . import tfidf as tfidf_io
    folder = Path(folder)
    rebuild = "다시 만들기: python scripts/train_safety_classifier.py --data ../shared/data/korean-hate-speech/train.tsv"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        state = load_file(str(folder / "model.safetensors"))
        vec, (hate_lr, bias_lr) = tfidf_io.load(folder, ("hate", "bias"))
    except FileNotFoundError as e:
        raise ClassifierFileError(f"안전 분류기 파일이 없습니다: {e.filename}. {rebuild}") from None
    except Exception as e:
        raise ClassifierFileError(f"안전 분류기 파일이 손상되었습니다({folder}: {type(e).__name__}). {rebuild}") from None
    tokenizer, model = load_bundled_encoder()
    if tokenizer_fingerprint(tokenizer) != config["tokenizer"]["fingerprint"]:
        raise ClassifierFileError(f"{folder / 'config.json'}: 이 분류기는 다른 내장 모델의 토크나이저로 학습했습니다. {rebuild}")
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if unexpected or set(missing) - set(SHARED):
        raise ClassifierFileError(f"{folder / 'model.safetensors'}: 가중치가 맞지 않습니다"
                                  f"({len(unexpected)}개 남음, {len(set(missing) - set(SHARED))}개 빠짐). {rebuild}")
    return Classifier(model.eval(), tokenizer, (vec, hate_lr, bias_lr), config["gpt2_weight"], config)


def encode(tokenizer, texts, max_tokens=MAX_TOKENS):
    rows = [tokenizer(t, add_special_tokens=False).input_ids[:max_tokens] or [tokenizer.eos_token_id] for t in texts]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask


@torch.inference_mode()
def gpt2_probs(model, tokenizer, texts, batch_size=64):
    """(hate probs (N, 3), bias probs (N, 3)) from the fine-tuned GPT-2."""
    hate, bias = [], []
    for i in range(0, len(texts), batch_size):
        h, b = model(*encode(tokenizer, texts[i:i + batch_size]))
        hate.append(F.softmax(h.float(), -1)), bias.append(F.softmax(b.float(), -1))
    return torch.cat(hate).numpy(), torch.cat(bias).numpy()


def mixed_probs(clf, texts):
    """The ensemble: weight * GPT-2 + (1 - weight) * TF-IDF, for hate and for bias."""
    from . import tfidf as tfidf_io
    vec, hate_lr, bias_lr = clf.tfidf
    g_hate, g_bias = gpt2_probs(clf.model, clf.tokenizer, texts)
    w = clf.weight
    return (w * g_hate + (1 - w) * tfidf_io.proba(vec, hate_lr, texts),
            w * g_bias + (1 - w) * tfidf_io.proba(vec, bias_lr, texts))


def hate_label(p):
    """'none' unless P(offensive) + P(hate) >= 0.5, then the likelier of the two: the label agrees with the
    score (a plain 3-way argmax can say 'none' at 0.39 while the two toxic classes add up to 0.61)."""
    return "none" if p[1] + p[2] < 0.5 else HATE_LABELS[1 + int(p[2] > p[1])]


def predict(clf, texts):
    """[(P(hate or offensive), hate label, bias label)] for non-empty texts."""
    hate, bias = mixed_probs(clf, texts)
    return [(float(h[1] + h[2]), hate_label(h), BIAS_LABELS[int(b.argmax())]) for h, b in zip(hate, bias)]
