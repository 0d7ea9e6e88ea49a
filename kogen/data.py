"""NSMC (Naver sentiment movie corpus) and plain text files, as ratsnlp-style datasets.

NsmcCorpus turns each review into "긍정 <review>" or "부정 <review>", so a model fine-tuned on it
learns to write a review of the sentiment named by its first word. GenerationDataset tokenizes
the texts once; data_collator pads each batch to its longest row and masks the padding out of
the labels (-100), which ratsnlp did not: its loss also counted predicting <pad>.
"""
import hashlib
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

NSMC_FILES = {
    "train": ("ratings_train.txt", "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_train.txt", 150_000),
    "test": ("ratings_test.txt", "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_test.txt", 50_000),
}
LABEL_PREFIX = {"1": "긍정", "0": "부정"}


class DataError(Exception):
    """A data file that is missing, empty or not in the expected format."""


@dataclass
class GenerationExample:
    text: str


def default_data_root():
    """Where NSMC lives: KOGEN_NSMC_DIR, else ~/.cache/kogen (downloaded on first use)."""
    return os.environ.get("KOGEN_NSMC_DIR") or os.path.join(default_cache_parent(), "nsmc")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest):
    """Stream `url` to `dest` through a .part file, with a progress bar; atomic on success."""
    from tqdm import tqdm
    part = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest)) as bar:
                for block in iter(lambda: r.read(1 << 16), b""):
                    f.write(block)
                    bar.update(len(block))
        if total and os.path.getsize(part) != total:
            raise DataError(f"{url}: {os.path.getsize(part)} / {total} 바이트만 받았습니다. 다시 실행하세요.")
        os.replace(part, dest)
    except OSError as e:
        raise DataError(f"NSMC를 내려받지 못했습니다({url}): {e}. 인터넷 연결을 확인하거나, 파일을 직접 받아 "
                        f"KOGEN_NSMC_DIR(또는 --data-dir)로 그 폴더를 지정하세요.") from None
    finally:
        if os.path.exists(part):
            os.remove(part)


def ensure_nsmc(root=None):
    """Return a folder holding ratings_train.txt and ratings_test.txt, downloading into the cache
    if `root` is the cache and the files are not there yet. A user-given folder is never written."""
    root = root or default_data_root()
    files = [os.path.join(root, name) for name, _, _ in NSMC_FILES.values()]
    if all(os.path.exists(f) for f in files):
        verify_manifest(root)
        return root
    if root == os.environ.get("KOGEN_NSMC_DIR") or not root.startswith(default_cache_parent()):
        missing = [f for f in files if not os.path.exists(f)]
        raise DataError(f"NSMC 파일이 없습니다: {', '.join(missing)}. ratings_train.txt와 ratings_test.txt가 있는 "
                        f"폴더를 지정하거나, 지정을 빼서 자동으로 내려받게 하세요.")
    os.makedirs(root, exist_ok=True)
    manifest = {}
    for name, url, _ in NSMC_FILES.values():
        dest = os.path.join(root, name)
        if not os.path.exists(dest):
            download(url, dest)
        manifest[name] = sha256(dest)
    write_json_atomic(os.path.join(root, "SHA256SUMS.json"), manifest)
    return root


def default_cache_parent():
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "kogen")


def verify_manifest(root):
    """A cache written by ensure_nsmc records each file's sha256; a changed file is re-downloaded."""
    path = os.path.join(root, "SHA256SUMS.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        manifest = json.load(f)
    for name, digest in manifest.items():
        if sha256(os.path.join(root, name)) != digest:
            os.remove(os.path.join(root, name))
            raise DataError(f"{os.path.join(root, name)}의 체크섬이 기록과 다릅니다(손상된 파일). 파일을 지웠으니 "
                            f"다시 실행하면 새로 내려받습니다.")


def write_json_atomic(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def read_nsmc(path):
    """(texts, n_skipped) from one NSMC file; malformed rows are skipped, counted and reported."""
    if not os.path.exists(path):
        raise DataError(f"파일이 없습니다: {path}")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].split("\t")[:3] != ["id", "document", "label"]:
        raise DataError(f"{path}: NSMC 형식이 아닙니다. 첫 줄이 'id<TAB>document<TAB>label' 머리글이어야 합니다.")
    texts, skipped = [], 0
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != 3 or not fields[1].strip() or fields[2].strip() not in LABEL_PREFIX:
            skipped += 1
            continue
        texts.append(f"{LABEL_PREFIX[fields[2].strip()]} {fields[1].strip()}")
    if skipped:
        print(f"[kogen] {path}: 형식이 잘못된 {skipped}줄을 건너뛰었습니다(빈 리뷰, 빠진 칸, 0/1이 아닌 레이블).",
              file=sys.stderr)
    if not texts:
        raise DataError(f"{path}: 쓸 수 있는 리뷰가 한 줄도 없습니다.")
    return texts, skipped


class NsmcCorpus:
    """ratsnlp's NsmcCorpus: get_examples(data_root_path, mode) with mode "train" or "test"."""

    def get_examples(self, data_root_path, mode):
        if mode not in NSMC_FILES:
            raise ValueError(f"mode는 'train' 또는 'test'여야 합니다(받은 값: {mode!r}).")
        texts, _ = read_nsmc(os.path.join(data_root_path, NSMC_FILES[mode][0]))
        return [GenerationExample(t) for t in texts]


class TextLinesCorpus:
    """Any UTF-8 text file with one example per line: <root>/<mode>.txt."""

    def get_examples(self, data_root_path, mode):
        path = Path(data_root_path) / f"{mode}.txt"
        if not path.exists():
            raise DataError(f"파일이 없습니다: {path}. 한 줄에 예제 하나인 {mode}.txt를 두세요.")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise DataError(f"{path}: 비어 있습니다.")
        return [GenerationExample(t) for t in texts]


class GenerationDataset(Dataset):
    """Tokenized examples of `corpus`, ratsnlp's constructor: (args, tokenizer, corpus, mode)."""

    def __init__(self, args, tokenizer, corpus, mode="train", max_examples=None):
        root = corpus_root(args)
        examples = corpus.get_examples(root, mode)
        if max_examples:
            examples = examples[:max_examples]
        enc = tokenizer([e.text for e in examples], add_special_tokens=False, truncation=True,
                        max_length=args.max_seq_length - 1)
        # end every example with </s> so the model learns where a review stops
        self.features = [ids + [tokenizer.eos_token_id] for ids in enc["input_ids"]]
        self.pad_token_id = tokenizer.pad_token_id

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return {"input_ids": self.features[i]}


def corpus_root(args):
    """The folder with the corpus files: the args' root dir (+ corpus name if that subfolder exists)."""
    root = args.downstream_corpus_root_dir or default_data_root()
    sub = os.path.join(root, args.downstream_corpus_name or "")
    if args.downstream_corpus_name and os.path.isdir(sub):
        return sub
    if args.downstream_corpus_name == "nsmc":
        return ensure_nsmc(root)
    return root


def data_collator(features, pad_token_id=3):
    """Pad to the longest row; labels are input_ids with padding set to -100 (ignored by the loss)."""
    n = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), n), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        input_ids[i, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
        attention_mask[i, :len(f["input_ids"])] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def bucketed_batches(rows, batch_size, rng=None, chunk_batches=50):
    """Batches of rows whose first field is a sequence, with similar lengths together (sorted inside
    chunks of `chunk_batches` batches) so little of each padded batch is padding. With `rng`, rows and
    batches are shuffled; without, the order is kept (evaluation)."""
    rows = rows[:]
    if rng is not None:
        rng.shuffle(rows)
    chunk = batch_size * chunk_batches
    out = []
    for i in range(0, len(rows), chunk):
        part = sorted(rows[i:i + chunk], key=lambda r: len(r[0]))
        out += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    if rng is not None:
        rng.shuffle(out)
    return out
