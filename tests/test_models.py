"""Model resolution and loading: offline fallback, clear errors, KoGPT2 tokenizer conventions."""
import time

import pytest
import torch

from kogen.models import (BUNDLED_MODEL_DIR, ModelNotFoundError, load_causal_lm, load_tokenizer,
                          pick_device, resolve_model)


@pytest.mark.parametrize("text", ["이 영화 정말 재밌어요! 배우들 연기도 최고, 10점 만점에 10점.",
                                  "ㅋㅋㅋ 진짜 웃기네 ㅠㅠ 또 볼래요"])
def test_korean_round_trips_through_bundled_tokenizer(text):
    tok = load_tokenizer(BUNDLED_MODEL_DIR)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 and tok.unk_token_id not in ids, ids
    assert tok.decode(ids) == text


def test_bundled_tokenizer_follows_kogpt2_special_tokens():
    tok = load_tokenizer(BUNDLED_MODEL_DIR)
    assert tok.bos_token == tok.eos_token == "</s>"
    assert (tok.unk_token, tok.pad_token, tok.mask_token) == ("<unk>", "<pad>", "<mask>")
    # same ids as KoGPT2: </s>=1, <pad>=3, <unk>=5, <mask>=6
    assert (tok.eos_token_id, tok.pad_token_id, tok.unk_token_id, tok.mask_token_id) == (1, 3, 5, 6)
    # no extra <|endoftext|> token: the vocabulary is exactly the model's embedding size
    model = load_causal_lm(BUNDLED_MODEL_DIR, "cpu")
    assert len(tok) == model.config.vocab_size


def test_bundled_model_loads_as_gpt2_in_float32_eval_mode():
    model = load_causal_lm(BUNDLED_MODEL_DIR, "cpu")
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.dtype == torch.float32 and not model.training


def test_unreachable_hub_falls_back_to_bundled_model_fast(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    path = resolve_model("skt/kogpt2-base-v2")
    assert time.time() - t < 3, "offline resolution must not wait on the network"
    assert path == str(BUNDLED_MODEL_DIR)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "내장" in err and "skt/kogpt2-base-v2" in err, err


def test_no_network_without_offline_flag_falls_back_fast(monkeypatch, capsys):
    # an endpoint on a closed loopback port: the connection is refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    t = time.time()
    assert resolve_model("someone/some-model") == str(BUNDLED_MODEL_DIR)
    assert time.time() - t < 3
    assert "someone/some-model" in capsys.readouterr().err


def test_kogen_model_env_names_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("KOGEN_MODEL", str(BUNDLED_MODEL_DIR))
    assert resolve_model() == str(BUNDLED_MODEL_DIR)
    monkeypatch.setenv("KOGEN_MODEL", "bundled")
    assert resolve_model() == str(BUNDLED_MODEL_DIR)


@pytest.mark.parametrize("name, words", [
    ("./no/such/folder", "찾을 수 없습니다"),
    ("not a model name!", "허브 id"),
])
def test_unknown_model_names_get_one_clear_line(name, words):
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model(name)
    assert name in str(e.value) and words in str(e.value)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))


def test_exported_folder_tokenizer_still_round_trips(tmp_path):
    """save_pretrained adds tokenizer_config.json; loading it back must keep Korean and specials."""
    tok = load_tokenizer(BUNDLED_MODEL_DIR)
    tok.save_pretrained(tmp_path)
    load_causal_lm(BUNDLED_MODEL_DIR, "cpu").save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again("영화가 좋다")["input_ids"] == tok("영화가 좋다")["input_ids"]
    assert (again.eos_token, again.pad_token_id) == ("</s>", 3)


def test_device_prefers_cuda_and_rejects_a_missing_one(monkeypatch):
    monkeypatch.delenv("KOGEN_DEVICE", raising=False)
    if torch.cuda.is_available():
        assert pick_device().type == "cuda"
    else:
        assert pick_device().type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA"):
            pick_device("cuda")
    monkeypatch.setenv("KOGEN_DEVICE", "cpu")
    assert pick_device().type == "cpu"


def test_cached_hub_model_resolves_offline_without_fallback(tmp_path, monkeypatch, capsys):
    """A model already in the Hugging Face cache is used as is, with no network and no fallback."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--someone--cached-model"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        (snap / f).write_bytes((BUNDLED_MODEL_DIR / f).read_bytes())
    path = resolve_model("someone/cached-model")
    assert path == str(snap) and capsys.readouterr().err == ""
    assert load_tokenizer(path).decode(load_tokenizer(path)("좋은 영화")["input_ids"]) == "좋은 영화"


def test_bundled_model_never_generates_unk(bundled):
    """<unk> decodes to nothing: forced to go on, the model must write real tokens instead."""
    model, tok = bundled
    ids = tok("안녕하세요", return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, do_sample=False, max_new_tokens=30, min_new_tokens=30, pad_token_id=tok.pad_token_id)
    assert tok.unk_token_id not in out[0].tolist(), tok.decode(out[0])
