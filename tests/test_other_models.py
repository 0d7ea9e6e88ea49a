"""The other Korean models of the guide's table, as tiny random models laid out the way their hub repos are:
KoGPT-Trinity (GPT-2, pytorch_model.bin, tokenizer.json, an empty tokenizer_config.json) and Polyglot-ko
(GPT-NeoX, a tokenizer_config.json and special_tokens_map.json without a pad token, a vocabulary padded
past the tokenizer's). Each goes through generate, a short fine-tuning, export and serve on the same kogen
code paths as KoGPT2 (`--model DIR`). Nothing is downloaded."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import AddedToken, Tokenizer
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig,
                          GPTNeoXForCausalLM)

from conftest import one_thread, write_nsmc
from kogen.generation import generate
from kogen.models import BUNDLED_MODEL_DIR, load_model, load_tokenizer
from kogen.training import GenerationTrainArguments, fine_tune
from kogen.web import create_app, load_for_serving

PROMPT = "이 영화는"


def trinity_like(folder, tokenizer_config=""):
    """skt/ko-gpt-trinity-1.2B-v0.5 scaled down: GPT-2 blocks (there 1920 wide, 24 layers, 51,200 tokens),
    PyTorch .bin weights, KoGPT2's kind of tokenizer.json and an empty tokenizer_config.json."""
    folder.mkdir()
    cfg = GPT2Config(vocab_size=8000, n_embd=48, n_layer=2, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).config.save_pretrained(folder)
    torch.save(GPT2LMHeadModel(cfg).state_dict(), folder / "pytorch_model.bin")
    shutil.copy(BUNDLED_MODEL_DIR / "tokenizer.json", folder)
    (folder / "tokenizer_config.json").write_text(tokenizer_config)
    return folder


def polyglot_like(folder, tokenizer_class="PreTrainedTokenizerFast"):
    """EleutherAI/polyglot-ko-1.3b scaled down: GPT-NeoX (there 2048 wide, 24 layers, rotary on half of
    each head), <|endoftext|> as bos/eos/unk and no pad token, 64 embedding rows more than the tokenizer
    has tokens (30,080 for 30,003 there)."""
    folder.mkdir()
    raw = Tokenizer.from_file(str(BUNDLED_MODEL_DIR / "tokenizer.json"))
    raw.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    raw.save(str(folder / "tokenizer.json"))
    eos = raw.token_to_id("<|endoftext|>")
    specials = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class, **specials}))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    cfg = GPTNeoXConfig(vocab_size=raw.get_vocab_size() + 64, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128, rotary_pct=0.5,
                        bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=False)
    torch.manual_seed(0)
    GPTNeoXForCausalLM(cfg).save_pretrained(folder)
    return folder


def kogpt2_like(folder):
    """skt/kogpt2-base-v2's layout, as the bundled model has it: config.json, weights, tokenizer.json only."""
    return Path(shutil.copytree(BUNDLED_MODEL_DIR, folder))


BUILDERS = {"kogpt2": (kogpt2_like, "GPT2LMHeadModel"), "trinity": (trinity_like, "GPT2LMHeadModel"),
            "polyglot": (polyglot_like, "GPTNeoXForCausalLM")}


@pytest.mark.parametrize("build, config", [
    (trinity_like, ""), (trinity_like, "{}"),
    (polyglot_like, "PreTrainedTokenizerFast"), (polyglot_like, "GPTNeoXTokenizer"),
])
def test_hub_layouts_load_with_korean_intact_and_eos_and_pad(tmp_path, build, config):
    """An empty tokenizer_config.json made AutoTokenizer fail (0 bytes) or map Korean to no tokens ("{}");
    transformers 5's GPTNeoXTokenizer rebuilds a Metaspace vocabulary as byte-level BPE, same result."""
    tok = load_tokenizer(build(tmp_path / "m", config))
    ids = tok("영화가 정말 좋았어요", add_special_tokens=False)["input_ids"]
    assert ids and tok.decode(ids) == "영화가 정말 좋았어요", ids
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    if build is trinity_like:
        assert (tok.eos_token, tok.pad_token) == ("</s>", "<pad>"), "KoGPT2's special tokens"
    else:
        assert tok.eos_token == tok.pad_token == "<|endoftext|>"


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def trained(request, tmp_path_factory):
    """(name, base folder, best checkpoint, exported folder) after two fine-tuning steps (the first has
    learning rate 0: warm-up starts there)."""
    root = tmp_path_factory.mktemp(request.param)
    build, _ = BUILDERS[request.param]
    base = build(root / "base")
    args = GenerationTrainArguments(pretrained_model_name=str(base),
                                    downstream_corpus_root_dir=write_nsmc(root / "nsmc", n_train=16, n_test=8),
                                    downstream_model_dir=str(root / "out"), max_seq_length=16, batch_size=8,
                                    learning_rate=1e-3, epochs=1, fp16=False)
    with one_thread():
        best, export_dir = fine_tune(args)
    return request.param, base, best, export_dir


def test_generate_matches_hugging_face_greedy(trained):
    name, base, _, _ = trained
    model, tok, _ = load_model(str(base), "cpu")
    assert type(model).__name__ == BUILDERS[name][1]
    ids = tok(PROMPT, return_tensors="pt", add_special_tokens=False).input_ids
    want = model.generate(ids, do_sample=False, max_new_tokens=8, min_new_tokens=8, pad_token_id=tok.pad_token_id)
    text = generate(model, tok, PROMPT, max_new_tokens=8, min_new_tokens=8)[0]
    assert text == tok.decode(want[0], skip_special_tokens=True), text


def test_fine_tuning_is_exported_and_loads_back(trained):
    name, base, best, export_dir = trained
    assert best and "val_loss=" in best, best
    before, _, _ = load_model(str(base), "cpu")
    after, tok, _ = load_model(export_dir, "cpu")
    assert type(after).__name__ == BUILDERS[name][1]
    changed = [k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert changed, "fine-tuning changed no weight"
    assert tok.decode(tok("긍정 좋아요")["input_ids"]) == "긍정 좋아요"


def test_exported_folder_loads_with_plain_auto_classes(trained):
    """What vLLM (and anything else) does: AutoTokenizer + AutoModelForCausalLM, no kogen."""
    _, _, _, export_dir = trained
    tok = AutoTokenizer.from_pretrained(export_dir)
    model = AutoModelForCausalLM.from_pretrained(export_dir)
    ids = tok("긍정 이 영화 정말 좋아요", add_special_tokens=False)["input_ids"]
    assert ids and tok.decode(ids) == "긍정 이 영화 정말 좋아요", ids
    settings = json.loads((Path(export_dir) / "tokenizer_config.json").read_text())
    assert settings["tokenizer_class"] == "PreTrainedTokenizerFast", "the class transformers 4 (vLLM's) and 5 both know"
    kogen_model, _, _ = load_model(export_dir, "cpu")
    x = torch.tensor([ids])
    assert torch.allclose(model(x).logits, kogen_model(x).logits), "the same weights as kogen loads"


def test_serve_answers_from_the_exported_model(trained):
    """kogen serve --model DIR's loading and routes (Flask's test client: the same app without a socket)."""
    _, _, _, export_dir = trained
    model, tok, name, device = load_for_serving(model=export_dir, device="cpu")
    client = create_app(model, tok, model_name=name, device=str(device)).test_client()
    r = client.post("/api/generate", json=dict(prompt=PROMPT, max_new_tokens=6, min_new_tokens=6))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json["texts"] == [generate(model, tok, PROMPT, max_new_tokens=6, min_new_tokens=6)[0]]
    r = client.post("/v1/completions", json=dict(model=name, prompt=PROMPT, max_tokens=4, temperature=0))
    assert r.status_code == 200 and r.json["usage"]["completion_tokens"] == 4, r.get_data(as_text=True)
    assert client.get("/healthz").json["max_context"] == model.config.to_dict().get("n_positions", 128), \
        "the model's own context (n_positions or max_position_embeddings)"


def test_kogen_generate_takes_a_gpt_neox_folder_as_model(tmp_path):
    """`kogen generate --model DIR`, as a user runs it, prints what the library generates."""
    from test_cli import kogen
    base = polyglot_like(tmp_path / "m")
    model, tok, _ = load_model(str(base), "cpu")
    r = kogen("generate", PROMPT, "--model", str(base), "--max-new-tokens", "6", "--json", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["text"] == generate(model, tok, PROMPT, max_new_tokens=6)[0]
