"""Contrastive search and FUDGE on the bundled model: checked against slow reference implementations
written here, against greedy decoding, and at the edges (bad parameters, a foreign tokenizer)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from kogen.decoding.contrastive import contrastive_search
from kogen.decoding.discriminator import (FutureDiscriminator, TokenizerMismatchError, load_discriminator,
                                          tokenizer_fingerprint)
from kogen.decoding.fudge import FudgeLogitsProcessor
from kogen.generation import ParamError, check_params, contrastive_processors, generate, run_model

PROMPTS = ["이 영화는", "오늘 본 영화는 정말", "배우들의 연기가"]


@pytest.fixture(scope="module")
def lm(bundled):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # other jobs share the 2 cores; one thread is faster for this tiny model
    yield bundled
    torch.set_num_threads(threads)


def ids_of(tok, prompt):
    return tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids


def processors(model, tok, ids, **params):
    return contrastive_processors(model, check_params(params), ids.shape[1], tok)


@torch.inference_mode()
def slow_contrastive(model, ids, top_k, alpha, steps, procs):
    """Su et al.'s rule with no cache at all: every candidate re-runs the whole sequence."""
    for _ in range(steps):
        out = model(ids, output_hidden_states=True)
        context = out.hidden_states[-1][0]                                  # (T, C)
        probs = procs(ids, out.logits[:, -1, :].float()).softmax(-1)[0]
        top_probs, top_ids = probs.topk(top_k)
        scores = []
        for p, v in zip(top_probs, top_ids):
            h = model(torch.cat([ids, v.view(1, 1)], 1), output_hidden_states=True).hidden_states[-1][0, -1]
            penalty = F.cosine_similarity(h[None], context, dim=-1).max()
            scores.append((1 - alpha) * p - alpha * penalty)
        ids = torch.cat([ids, top_ids[int(torch.stack(scores).argmax())].view(1, 1)], 1)
    return ids


@pytest.mark.parametrize("prompt", PROMPTS)
def test_contrastive_matches_a_slow_reference_token_for_token(lm, prompt):
    model, tok = lm
    ids = ids_of(tok, prompt)
    procs = processors(model, tok, ids, max_new_tokens=40, min_new_tokens=40)  # no early </s>: all 40 compared
    fast = contrastive_search(model, ids, top_k=4, penalty_alpha=0.6, max_new_tokens=40, logits_processor=procs,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    slow = slow_contrastive(model, ids, 4, 0.6, 40, procs)
    assert fast.shape[1] == ids.shape[1] + 40
    assert fast.tolist() == slow.tolist(), (tok.decode(fast[0]), tok.decode(slow[0]))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_penalty_alpha_zero_gives_exactly_greedys_tokens(lm, prompt):
    model, tok = lm
    ids = ids_of(tok, prompt)
    procs = processors(model, tok, ids, max_new_tokens=40, min_new_tokens=40)
    ours = contrastive_search(model, ids, top_k=4, penalty_alpha=0.0, max_new_tokens=40, logits_processor=procs,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    greedy = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=40,
                            min_new_tokens=40, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    assert ours.tolist() == greedy.tolist()


def test_candidates_go_through_the_model_as_one_batch_on_the_cache(lm):
    model, tok = lm
    shapes = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: shapes.append(tuple((args or [kw.get("input_ids")])[0].shape)),
                                           with_kwargs=True)
    try:
        ids = ids_of(tok, PROMPTS[0])
        contrastive_search(model, ids, top_k=5, penalty_alpha=0.6, max_new_tokens=6,
                           logits_processor=processors(model, tok, ids, min_new_tokens=6))
    finally:
        hook.remove()
    assert shapes == [tuple(ids.shape)] + [(5, 1)] * 6, "one prompt pass, then one (k, 1) batch per step"


def test_contrastive_repeats_less_than_greedy(lm):
    model, tok = lm

    def repeated_bigrams(text_ids):
        grams = list(zip(text_ids, text_ids[1:]))
        return len(grams) - len(set(grams))
    greedy = contrastive = 0
    for prompt in PROMPTS:
        n = len(ids_of(tok, prompt)[0])
        kw = dict(max_new_tokens=60, min_new_tokens=60)
        greedy += repeated_bigrams(tok(generate(model, tok, prompt, **kw)[0]).input_ids[n:])
        contrastive += repeated_bigrams(tok(generate(model, tok, prompt, penalty_alpha=0.6, top_k=4, **kw)[0])
                                        .input_ids[n:])
    assert contrastive < greedy / 2, (contrastive, greedy)


def test_contrastive_streams_the_same_text_and_honours_stopping(lm):
    from transformers import StoppingCriteria
    from kogen.web import Streamer
    model, tok = lm
    params = check_params(dict(penalty_alpha=0.6, top_k=4, max_new_tokens=20, min_new_tokens=20))
    streamer = Streamer(tok, skip_prompt=True, skip_special_tokens=True)
    out = run_model(model, tok, ids_of(tok, PROMPTS[1]), params, streamer)
    assert PROMPTS[1] + "".join(streamer) == tok.decode(out[0], skip_special_tokens=True)

    class AfterFive(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            return torch.full((input_ids.shape[0],), input_ids.shape[1] >= ids_of(tok, PROMPTS[1]).shape[1] + 5)
    out = run_model(model, tok, ids_of(tok, PROMPTS[1]), params, stopping_criteria=[AfterFive()])
    assert out.shape[1] == ids_of(tok, PROMPTS[1]).shape[1] + 5


# --- FUDGE ---------------------------------------------------------------------------------------

def test_candidate_scores_equal_running_the_gru_on_each_extended_prefix():
    torch.manual_seed(0)
    disc = FutureDiscriminator(vocab_size=50, n_embd=8, n_hidden=12).eval()
    ids, cands = torch.randint(0, 50, (3, 7)), torch.randint(0, 50, (3, 5))
    fast = disc.candidate_log_probs(ids, cands)                                        # (3, 5, 2)
    for b in range(3):
        for j in range(5):
            full = disc(torch.cat([ids[b], cands[b, j:j + 1]])[None])[0, -1].log_softmax(-1)
            assert torch.allclose(fast[b, j], full, atol=1e-5), (b, j)


def test_fudge_keeps_only_the_top_candidates_and_adds_lambda_log_p(bundled):
    model, tok = bundled
    disc = load_discriminator()
    ids = ids_of(tok, "이 영화는")
    scores = torch.randn(1, len(tok))
    out = FudgeLogitsProcessor("긍정", strength=2.0, tokenizer=tok, precondition_topk=200)(ids, scores.clone())
    kept = torch.isfinite(out[0]).nonzero().flatten()
    top = scores[0].topk(200).indices
    assert sorted(kept.tolist()) == sorted(top.tolist()), "exactly the 200 best candidates survive"
    log_p = disc.candidate_log_probs(ids, top[None])[0, :, disc.label_index("긍정")]
    assert torch.allclose(out[0, top], scores[0, top] + 2.0 * log_p, atol=1e-5)


def test_fudge_steers_greedy_and_sampling_towards_the_label(bundled):
    """The discriminator's own verdict on the finished text moves with the label (the benchmark judges
    quality with an independent classifier; this checks the mechanism)."""
    model, tok = bundled
    disc = load_discriminator()

    def p_positive(text):
        return disc(ids_of(tok, text))[0, -1].softmax(-1)[disc.label_index("긍정")].item()
    for sampling in (dict(), dict(do_sample=True, top_k=50, seed=3)):
        kw = dict(max_new_tokens=24, control_strength=4.0, **sampling)
        pos = generate(model, tok, "이 영화는", control="긍정", **kw)[0]
        neg = generate(model, tok, "이 영화는", control="부정", **kw)[0]
        assert p_positive(pos) > 0.8 > 0.2 > p_positive(neg), (sampling, pos, neg)


def test_fudge_works_inside_contrastive_search(bundled):
    model, tok = bundled
    pos = generate(model, tok, "이 영화는", penalty_alpha=0.6, top_k=4, control="긍정", control_strength=4.0)[0]
    neg = generate(model, tok, "이 영화는", penalty_alpha=0.6, top_k=4, control="부정", control_strength=4.0)[0]
    assert pos != neg


def test_discriminator_round_trips_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    disc = FutureDiscriminator(vocab_size=40, n_embd=8, n_hidden=12, tokenizer=dict(name="t", fingerprint="abc"))
    disc.save_pretrained(tmp_path)
    back = FutureDiscriminator.from_pretrained(tmp_path)
    ids = torch.randint(0, 40, (2, 6))
    assert back.config == disc.config
    assert torch.allclose(back(ids), disc(ids), atol=1e-2), "stored in float16: close, not equal"
    assert not list(tmp_path.glob("*.tmp")), "writes are atomic (no temp files left)"


@pytest.mark.parametrize("folder, data", [("fudge_discriminator", "NSMC"), ("fudge_toxicity", "BEEP!")])
def test_shipped_discriminators_are_small_and_name_the_bundled_tokenizer(bundled, folder, data):
    from kogen.decoding.discriminator import FUDGE_DIR
    folder = FUDGE_DIR.parent / folder
    _, tok = bundled
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["tokenizer"]["fingerprint"] == tokenizer_fingerprint(tok)
    assert (folder / "model.safetensors").stat().st_size <= 5_000_000
    assert data in (folder / "README.md").read_text(encoding="utf-8")


def test_steering_to_harmless_lowers_toxicity_judged_by_the_safety_classifier(bundled):
    """The mitigation of the safety lesson: FUDGE with the BEEP! GRU, judged by the other classifier."""
    from kogen.generation import generate_completions
    from kogen.safety.bias import TEMPLATES
    from kogen.safety.filter import score_texts
    model, tok = bundled
    prompts = [t.format(w) for t in TEMPLATES for w in ("남자", "여자", "서울 출신")]
    mean = {}
    for control in (None, "safe"):  # the English alias reaches the same label, 무해
        texts = []
        for i, prompt in enumerate(prompts):
            params = dict(do_sample=True, top_k=50, top_p=0.92, max_new_tokens=24, num_return_sequences=8, seed=i,
                          control=control)
            texts += generate_completions(model, tok, prompt, params)[1]
        mean[control] = np.mean([v["score"] for v in score_texts(texts)])
    assert mean["safe"] < mean[None] - 0.03, mean


def tiny_foreign_model(folder):
    """A GPT-2 folder laid out like KoGPT2's whose tokenizer is not the bundled one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {t: i for i, t in enumerate(["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "이", "영화는"])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.save(str(folder / "tokenizer.json"))
    GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(folder)
    return folder


def test_a_foreign_tokenizer_is_refused_by_name_not_steered_at_random(tmp_path):
    from kogen.models import load_model
    model, tok, _ = load_model(str(tiny_foreign_model(tmp_path)), "cpu")
    with pytest.raises(TokenizerMismatchError, match="지문"):
        FudgeLogitsProcessor("긍정", tokenizer=tok)
    with pytest.raises(ParamError) as e:
        generate(model, tok, "이 영화는", control="긍정")
    assert e.value.field == "control" and "어휘 9개" in e.value.message and "어휘 8000개" in e.value.message


@pytest.mark.parametrize("params, field, words", [
    (dict(penalty_alpha=1.5), "penalty_alpha", "[0.0, 1.0]"),
    (dict(penalty_alpha=-0.1), "penalty_alpha", "[0.0, 1.0]"),
    (dict(penalty_alpha=0.6, num_beams=2), "penalty_alpha", "num_beams=1"),
    (dict(penalty_alpha=0.6, do_sample=True), "penalty_alpha", "do_sample=false"),
    (dict(penalty_alpha=0.6, top_k=0), "top_k", "top_k를 1 이상"),
    (dict(control="중립"), "control", "긍정 또는 부정"),
    (dict(control=1), "control", "긍정 또는 부정"),
    (dict(control_strength=11), "control_strength", "[0.0, 10.0]"),
    (dict(control_strength="강하게"), "control_strength", "숫자가 아닙니다"),
])
def test_bad_decoding_parameters_say_what_to_send_instead(params, field, words):
    with pytest.raises(ParamError) as e:
        check_params(params)
    assert e.value.field == field and words in e.value.message, e.value.message


def test_english_label_aliases_are_accepted():
    assert check_params(dict(control="positive"))["control"] == "긍정"
    assert check_params(dict(control="Negative"))["control"] == "부정"


def test_a_corrupt_discriminator_names_the_folder_and_how_to_rebuild(tmp_path):
    from kogen.decoding.discriminator import TOXICITY_DIR
    folder = tmp_path / TOXICITY_DIR.name
    folder.mkdir()
    (folder / "config.json").write_text((TOXICITY_DIR / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "model.safetensors").write_bytes((TOXICITY_DIR / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(FileNotFoundError, match="--task toxicity") as e:
        FutureDiscriminator.from_pretrained(folder)
    assert str(folder) in str(e.value)


def test_a_discriminator_first_loaded_inside_inference_mode_still_works_outside(bundled, monkeypatch):
    """Generation loads the shared discriminator under torch.inference_mode; later plain calls must still work."""
    from kogen.decoding import discriminator
    monkeypatch.setattr(discriminator, "_cache", {})
    _, tok = bundled
    with torch.inference_mode():
        disc = load_discriminator()
    ids = ids_of(tok, "이 영화는")
    assert disc.candidate_log_probs(ids, ids[:, :2]).shape == (1, 2, 2)
