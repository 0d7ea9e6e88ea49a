"""Resolve a model name (hub id, local folder, or the bundled model) and load it the KoGPT2 way.

KoGPT2's hub folder holds only config.json, the weights and tokenizer.json. AutoTokenizer turns
such a folder into a byte-level GPT-2 tokenizer that maps Korean to nothing (transformers 5) or
adds <|endoftext|> (transformers 4), so GPT-2 folders without tokenizer settings (no
tokenizer_config.json, or KoGPT-Trinity's empty one) are loaded with PreTrainedTokenizerFast and
KoGPT2's special tokens, exactly as the course teaches. Other models (Polyglot-ko's GPT-NeoX) go
through AutoTokenizer, checked by a Korean round trip.
"""
import json
import os
import re
import socket
import sys
import threading
from pathlib import Path

import torch

DEFAULT_MODEL = "skt/kogpt2-base-v2"
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "bundled_model"
KOGPT2_SPECIAL_TOKENS = dict(bos_token="</s>", eos_token="</s>", unk_token="<unk>",
                             pad_token="<pad>", mask_token="<mask>")
# what a hub download of a causal LM needs; flax, tf, onnx and duplicate copies are skipped
HUB_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ModelNotFoundError(Exception):
    """A model name that is neither a folder, nor cached, nor on the hub."""


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def requested_model_name(name=None):
    return name or os.environ.get("KOGEN_MODEL") or DEFAULT_MODEL


def hub_reachable(host="huggingface.co", timeout=2.0):
    """True if a TCP connection to the hub opens within `timeout` s (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "")
    if endpoint:
        host = re.sub(r"^\w+://", "", endpoint).split("/")[0].split(":")[0]
    ok = []
    def probe():  # getaddrinfo ignores socket timeouts, so run it where we can stop waiting
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def weight_files(name):
    """safetensors if the repo has them, else the PyTorch .bin files (older repos), never both."""
    from huggingface_hub import HfApi
    files = HfApi().list_repo_files(name)
    if any(f.endswith(".safetensors") for f in files):
        return ["*.safetensors", "*.safetensors.index.json"]
    return ["*.bin", "*.bin.index.json"]


def resolve_model(name=None, fallback=True):
    """Return a local folder holding the model `name` (hub id, folder, or "bundled").

    Order: an existing folder; the Hugging Face cache; a download. If the hub cannot be
    reached and nothing is cached, use the bundled model and say so in one line.
    """
    name = requested_model_name(name)
    if name == "bundled":
        return str(BUNDLED_MODEL_DIR)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"'{name}' 폴더에 config.json이 없습니다. save_pretrained()로 저장한 "
                                     f"Hugging Face 모델 폴더를 지정하세요.")
        return str(path)
    if not HUB_ID.match(name):
        raise ModelNotFoundError(f"모델 '{name}'을(를) 찾을 수 없습니다: 그런 폴더가 없고 허브 id 형식(조직/이름)도 "
                                 f"아닙니다. --model 또는 KOGEN_MODEL에 폴더 경로, 'skt/kogpt2-base-v2' 같은 "
                                 f"허브 id, 또는 'bundled'를 지정하세요.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError
    try:  # already cached: no network at all
        return snapshot_download(name, allow_patterns=HUB_FILES + ["*.safetensors*", "*.bin*"],
                                 local_files_only=True)
    except Exception:
        pass
    if hub_reachable():
        try:
            return snapshot_download(name, allow_patterns=HUB_FILES + weight_files(name))
        except RepositoryNotFoundError:
            raise ModelNotFoundError(f"허브에 '{name}' 모델이 없습니다(이름 오타 또는 비공개 저장소). "
                                     f"https://huggingface.co/{name} 주소를 확인하거나 'bundled'를 쓰세요.") from None
        except Exception as e:
            if not fallback:
                raise ModelNotFoundError(f"'{name}' 내려받기 실패: {e}") from e
            reason = f"내려받기 실패({type(e).__name__})"
    else:
        reason = "허브에 연결할 수 없음" if os.environ.get("HF_HUB_OFFLINE") not in ("1", "true") else "HF_HUB_OFFLINE=1"
        if not fallback:
            raise ModelNotFoundError(f"'{name}' 모델이 캐시에 없고 {reason}입니다. 인터넷에 연결하거나 'bundled'를 쓰세요.")
    say(f"[kogen] '{name}' 모델을 쓸 수 없어({reason}, 캐시에도 없음) 내장 소형 한국어 GPT-2로 대신합니다: {BUNDLED_MODEL_DIR}")
    return str(BUNDLED_MODEL_DIR)


def model_label(name, path):
    """What a step prints as the model: the name asked for, or that the bundled model stands in for it."""
    if Path(path).resolve() != BUNDLED_MODEL_DIR:
        return name
    return "bundled (내장 소형 모델)" if name == "bundled" else f"내장 소형 모델 ({name} 대신)"


def read_config(path):
    with open(Path(path) / "config.json", encoding="utf-8") as f:
        return json.load(f)


def tokenizer_settings(path):
    """tokenizer_config.json's settings; {} when the file is missing or empty (KoGPT-Trinity ships an empty one)."""
    f = Path(path) / "tokenizer_config.json"
    text = f.read_text(encoding="utf-8").strip() if f.exists() else ""
    return json.loads(text) if text else {}


def round_trips(tok, probe="한국어 문장을 씁니다"):
    ids = tok(probe, add_special_tokens=False)["input_ids"]
    return bool(ids) and tok.decode(ids) == probe


def tokenizer_from_json(path, special_tokens):
    """tokenizer.json as it is, with those of `special_tokens` that its vocabulary holds (a token it lacks
    would get a new id past the model's embeddings)."""
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(path) / "tokenizer.json"))
    vocab = tok.get_vocab()
    known = {k: v for k, v in special_tokens.items() if k.endswith("_token") and isinstance(v, str) and v in vocab}
    tok.add_special_tokens(known)
    return tok


def load_tokenizer(path):
    """The folder's tokenizer, Korean intact, with an eos and a pad token.

    KoGPT2-style folders (gpt2, no or an empty tokenizer_config.json: KoGPT2, KoGPT-Trinity) get KoGPT2's
    special tokens. Elsewhere AutoTokenizer; where the class it picks rebuilds the vocabulary as byte-level
    BPE (transformers 5 does so for GPT2Tokenizer and GPTNeoXTokenizer) and Korean no longer round-trips,
    tokenizer.json is used as it is. GPT-NeoX (Polyglot-ko) ships no pad token: eos serves, as the labels
    mask padding by the attention mask, not by id."""
    from transformers import AutoTokenizer
    path, config = Path(path), read_config(path)
    settings = tokenizer_settings(path)
    if not settings and config.get("model_type") == "gpt2":
        return tokenizer_from_json(path, KOGPT2_SPECIAL_TOKENS)
    if not settings:
        tok = tokenizer_from_json(path, {})
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
        if not round_trips(tok) and (path / "tokenizer.json").exists():
            tok = tokenizer_from_json(path, {**tok.special_tokens_map, **settings})
    if tok.eos_token is None and config.get("eos_token_id") is not None:
        tok.add_special_tokens({"eos_token": tok.convert_ids_to_tokens(config["eos_token_id"])})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def pick_device(device=None):
    """An explicit choice, else KOGEN_DEVICE, else CUDA, then MPS, then CPU."""
    device = device or os.environ.get("KOGEN_DEVICE")
    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"장치 '{device}'를 요청했지만 CUDA GPU가 없습니다. --device cpu 를 쓰세요.")
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_causal_lm(path, device=None):
    """GPT2LMHeadModel for gpt2 folders (the course's class), AutoModelForCausalLM otherwise."""
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel
    cls = GPT2LMHeadModel if read_config(path).get("model_type") == "gpt2" else AutoModelForCausalLM
    model = cls.from_pretrained(str(path))
    if model.dtype == torch.float16 and pick_device(device).type == "cpu":
        model = model.float()  # half precision is slow and lossy on CPU
    return model.to(pick_device(device)).eval()


def load_model(name=None, device=None):
    """(model, tokenizer, path): the one call everything else uses to get a model."""
    path = resolve_model(name)
    return load_causal_lm(path, device), load_tokenizer(path), path
