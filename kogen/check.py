"""`kogen check`: run a step's file on the bundled model and check what it does, not what it prints.

    kogen check               # steps 1..5 in order, stopping at the first that fails (like rustlings)
    kogen check step2 step3   # just these
    kogen check --solutions   # solutions/stepN_solution.py instead of the exercises

Steps 1-3: the file is imported and its functions are called with the bundled model; each result must
equal `model.generate` called directly with the same settings and seed (minGPT's test, per function),
sampling must repeat with a seed and vary without one, and diversity must rise with temperature.
Step 4: make_args / make_dataloaders are called, then the script trains on a tiny NSMC folder; it must
leave an epoch=N-val_loss=X.XX.ckpt whose weights lower the validation loss. Step 5: the loading and
inference functions are called, then the script serves on a free port and must answer POST /api.

Whatever a student's file does wrong (a TODO left, a syntax error, a misspelt argument, a wrong type)
ends as a Korean message naming the step, the file:line and a likely fix; the checker never crashes on it.
Scripts run in a child process through `python -m kogen.check --run FILE REPORT`, which writes that
message to REPORT.
"""
import contextlib
import functools
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path

from .exercises import STEPS, display_path, exercise_path, solution_path
from .student import (CheckFailed, course_root, environ, explain, function, import_file, run_file,
                      script_failure, start_script, where)

TITLES = {1: "기본 생성", 2: "생성 전략", 3: "매개변수 조정", 4: "미세조정", 5: "웹 서비스"}
RECOMMENDED = dict(do_sample=True, repetition_penalty=1.5, no_repeat_ngram_size=3, temperature=0.9, top_k=50,
                   top_p=0.92)
TINY_REVIEWS = {  # the tiny NSMC folder step 4 trains on: repetitive on purpose, so loss falls fast
    "1": ["정말 재밌어요 최고의 영화", "배우들 연기가 너무 좋았다", "감동적이고 아름다운 이야기", "또 보고 싶은 영화입니다"],
    "0": ["시간 아까운 최악의 영화", "지루하고 재미없다", "스토리가 엉망이네요", "돈 주고 보기 아깝다"]}


# --- references ---------------------------------------------------------------------------------

@functools.cache
def bundled():
    """(model, tokenizer) of the bundled model on CPU, the reference every check compares against."""
    from .models import load_model
    model, tokenizer, _ = load_model("bundled", "cpu")
    return model, tokenizer


def reference(prompt, seed=None, model=None, **kw):
    """Texts of `model.generate(**kw)` for prompt, special tokens removed (what a student's call must give)."""
    import torch
    ref_model, tok = bundled()
    model = (model or ref_model).eval()  # a student's call may have left it in train mode
    ids = tok.encode(prompt, return_tensors="pt")
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(ids, **kw)
    return [clean(tok.decode(seq, skip_special_tokens=True)) for seq in out]


def clean(text):
    """Compare texts without special tokens or spacing differences."""
    if not isinstance(text, str):
        raise CheckFailed(f"글(문자열)을 돌려줘야 하는데 {type(text).__name__}을(를) 돌려줬습니다. "
                          f"tokenizer.decode(...)의 결과를 return 하세요.")
    for token in ("</s>", "<pad>", "<unk>", "<mask>", "<s>"):
        text = text.replace(token, "")
    return re.sub(r"\s+", " ", text).strip()


def same(got, want, fn, call, hint, variants=()):
    """Fail unless got == want; if got equals a known wrong variant, say which mistake that is."""
    if clean(got) == want:
        return
    for text, why in variants:
        if clean(got) == text:
            hint = why
            break
    raise CheckFailed(f"{where(fn)}: {call}의 결과가 기대와 다릅니다.\n   기대: {want}\n   실제: {clean(got)}\n   힌트: {hint}")


def expect(ok, message):
    if not ok:
        raise CheckFailed(message)


def ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct2(tok, texts):
    grams = [g for t in texts for g in ngrams(tok.tokenize(t), 2)]
    return len(set(grams)) / max(1, len(grams))


# --- the five steps ---------------------------------------------------------------------------------

def check_step1(path):
    model, tok = bundled()
    with environ(KOGEN_MODEL=None):
        default = function(import_file(path), "MODEL_NAME", path, "변수")
    expect(default == "skt/kogpt2-base-v2",
           f"KOGEN_MODEL이 없을 때 MODEL_NAME은 'skt/kogpt2-base-v2'여야 합니다(지금 {default!r}).")
    with environ(KOGEN_MODEL="bundled"):
        m = import_file(path)
    expect(m.MODEL_NAME == "bundled", f"KOGEN_MODEL=bundled인데 MODEL_NAME이 {m.MODEL_NAME!r}입니다. "
                                      f"os.environ.get(\"KOGEN_MODEL\", ...)로 환경 변수를 먼저 보세요.")
    load = function(m, "load_model_and_tokenizer", path)
    loaded = load("bundled")
    expect(isinstance(loaded, tuple) and len(loaded) == 2, f"{where(load)}: (model, tokenizer) 두 개를 돌려줘야 합니다.")
    student_model, student_tok = loaded
    expect(hasattr(student_model, "generate"), f"{where(load)}: 첫 번째 값이 모델이 아닙니다(GPT2LMHeadModel.from_pretrained).")
    specials = {name: getattr(student_tok, name, None) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    expect(specials == dict(bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"),
           f"{where(load)}: 토크나이저의 특수 토큰이 KoGPT2와 다릅니다: {specials}. from_pretrained에 bos_token=\"</s>\", "
           f"eos_token=\"</s>\", unk_token=\"<unk>\", pad_token=\"<pad>\", mask_token=\"<mask>\"를 넘기세요.")
    expect(student_tok.encode("안녕하세요") == tok.encode("안녕하세요"), f"{where(load)}: 토크나이저가 '안녕하세요'를 다르게 나눕니다.")

    greedy = function(m, "greedy_generate", path)
    for prompt, max_new, min_new in [("이 영화는", 20, 0), ("배우들의 연기가", 15, 15)]:
        want = reference(prompt, do_sample=False, max_new_tokens=max_new, min_new_tokens=min_new)[0]
        call = f"greedy_generate(model, tokenizer, {prompt!r}, max_new_tokens={max_new}, min_new_tokens={min_new})"
        same(greedy(model, tok, prompt, max_new_tokens=max_new, min_new_tokens=min_new), want, greedy, call,
             "model.generate(input_ids, do_sample=False, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)")
    want = reference("이 영화는", do_sample=False, max_new_tokens=10)[0]
    same(greedy(student_model, student_tok, "이 영화는", max_new_tokens=10), want, load,
         "load_model_and_tokenizer('bundled')로 불러온 모델의 greedy", "from_pretrained(path)로 불러왔는지 확인하세요.")

    by_hand = function(m, "greedy_by_hand", path)
    for prompt in ["이 영화는", "배우들의 연기가", "안녕하세요"]:
        want = reference(prompt, do_sample=False, max_new_tokens=20)[0]
        same(by_hand(model, tok, prompt, max_new_tokens=20), want, by_hand,
             f"greedy_by_hand(model, tokenizer, {prompt!r}, max_new_tokens=20)",
             "마지막 위치의 점수에서 가장 큰 토큰을 고르세요: next_logits.argmax(dim=-1, keepdim=True)")


def check_step2(path):
    model, tok = bundled()
    m = import_file(path)
    prompt, length = "이 영화는", dict(max_new_tokens=15, min_new_tokens=15)
    greedy = reference(prompt, do_sample=False, **length)[0]

    beam = function(m, "beam_generate", path)
    same(beam(model, tok, prompt, **length), reference(prompt, do_sample=False, num_beams=3, **length)[0], beam,
         f"beam_generate(model, tokenizer, {prompt!r}, max_new_tokens=15, min_new_tokens=15)",
         "model.generate(input_ids, do_sample=False, num_beams=3, max_new_tokens=..., min_new_tokens=...)",
         [(greedy, "greedy와 같은 결과입니다: num_beams=3을 넘겼나요?")])

    for name, settings, missing in [("top_k_generate", dict(do_sample=True, top_k=50), []),
                                    ("top_p_generate", dict(do_sample=True, top_k=0, top_p=0.92),
                                     [(dict(do_sample=True, top_p=0.92), "top_k=0이 빠졌습니다: transformers는 top_k=50을 "
                                                                         "기본으로 함께 켜므로 순수한 top-p가 되게 꺼야 합니다.")])]:
        fn = function(m, name, path)
        first, second = fn(model, tok, prompt, seed=123, **length), fn(model, tok, prompt, seed=123, **length)
        expect(clean(first) == clean(second), f"{where(fn)}: 같은 seed=123으로 두 번 불렀는데 결과가 다릅니다. "
                                              f"torch.manual_seed(seed)가 generate보다 먼저 불리는지 확인하세요.")
        variants = [(greedy, "greedy와 같은 결과입니다: do_sample=True로 샘플링을 켰나요?")]
        variants += [(reference(prompt, seed=123, **kw, **length)[0], why) for kw, why in missing]
        args = ", ".join(f"{k}={v}" for k, v in settings.items())
        same(first, reference(prompt, seed=123, **settings, **length)[0], fn,
             f"{name}(model, tokenizer, {prompt!r}, seed=123, ...)", f"model.generate(input_ids, {args}, ...)",
             variants)
        outs = {clean(fn(model, tok, prompt, **length)) for _ in range(4)}
        expect(len(outs) > 1, f"{where(fn)}: seed 없이 네 번 불렀는데 모두 같은 글입니다. do_sample=True로 샘플링을 켜세요.")


def check_step3(path):
    model, tok = bundled()
    m = import_file(path)
    prompt, length = "이 영화는", dict(max_new_tokens=40, min_new_tokens=40)
    greedy = reference(prompt, do_sample=False, **length)[0]
    for name, extra in [("no_repeat_generate", dict(no_repeat_ngram_size=3)),
                        ("repetition_penalty_generate", dict(repetition_penalty=1.5))]:
        fn = function(m, name, path)
        key, value = next(iter(extra.items()))
        same(fn(model, tok, prompt, **length), reference(prompt, do_sample=False, **extra, **length)[0], fn,
             f"{name}(model, tokenizer, {prompt!r}, max_new_tokens=40, min_new_tokens=40)",
             f"model.generate(input_ids, do_sample=False, {key}={value}, max_new_tokens=..., min_new_tokens=...)",
             [(greedy, f"greedy와 같은 결과입니다: {key}={value}를 넘겼나요?")])

    fn = function(m, "temperature_generate", path)
    diversity = {}
    for temperature in (0.3, 1.5):
        got = fn(model, tok, prompt, temperature, num_samples=6, max_new_tokens=20, min_new_tokens=20, seed=7)
        expect(isinstance(got, (list, tuple)) and len(got) == 6,
               f"{where(fn)}: num_samples=6이면 글 6개의 목록을 돌려줘야 합니다(num_return_sequences=num_samples).")
        want = reference(prompt, seed=7, do_sample=True, top_k=0, temperature=temperature, num_return_sequences=6,
                         max_new_tokens=20, min_new_tokens=20)
        with_top_k = reference(prompt, seed=7, do_sample=True, temperature=temperature, num_return_sequences=6,
                               max_new_tokens=20, min_new_tokens=20)
        if [clean(t) for t in got] != want:
            hint = ("top_k=0이 빠졌습니다: 기본 top-k(50)가 temperature의 효과를 가립니다."
                    if [clean(t) for t in got] == with_top_k else
                    "model.generate(input_ids, do_sample=True, top_k=0, temperature=temperature, "
                    "num_return_sequences=num_samples, max_new_tokens=..., min_new_tokens=...)")
            raise CheckFailed(f"{where(fn)}: temperature={temperature}, seed=7의 샘플이 기대와 다릅니다.\n"
                              f"   기대 첫 샘플: {want[0]}\n   실제 첫 샘플: {clean(got[0])}\n   힌트: {hint}")
        diversity[temperature] = distinct2(tok, got)
    expect(diversity[1.5] > diversity[0.3], f"{where(fn)}: temperature를 올렸는데 다양성(distinct-2)이 늘지 않았습니다 "
                                            f"({diversity[0.3]:.2f} → {diversity[1.5]:.2f}). "
                                            f"temperature=temperature를 넘겼나요?")

    fn = function(m, "recommended_generate", path)
    same(fn(model, tok, prompt, max_new_tokens=30, min_new_tokens=30, seed=7),
         reference(prompt, seed=7, max_new_tokens=30, min_new_tokens=30, **RECOMMENDED)[0], fn,
         f"recommended_generate(model, tokenizer, {prompt!r}, seed=7, ...)",
         "do_sample=True, repetition_penalty=1.5, no_repeat_ngram_size=3, temperature=0.9, top_k=50, top_p=0.92를 "
         "모두 넘기세요.")


def write_tiny_nsmc(folder, n_train=64, n_test=16):
    os.makedirs(folder, exist_ok=True)
    for name, n in (("ratings_train.txt", n_train), ("ratings_test.txt", n_test)):
        rows = ["id\tdocument\tlabel"]
        for i in range(n):
            label = "1" if i % 2 == 0 else "0"
            rows.append(f"{i}\t{TINY_REVIEWS[label][(i // 2) % 4]}\t{label}")
        Path(folder, name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(folder)


def val_loss(model, loader):
    """Token-weighted mean loss over `loader`, as GenerationTask computes val_loss."""
    import torch
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            n = (batch["labels"][:, 1:] != -100).sum().item()
            total += model(**batch).loss.item() * n
            count += n
    return total / count


def check_step4(path, tmp):
    from .deploy import load_checkpoint_state_dict
    from .models import load_causal_lm, resolve_model
    from .training import GenerationTrainArguments, best_checkpoint
    model, tok = bundled()
    data, ckpt_dir = write_tiny_nsmc(Path(tmp, "nsmc")), str(Path(tmp, "checkpoints"))
    settings = dict(KOGEN_MODEL="bundled", KOGEN_NSMC_DIR=data, KOGEN_CHECKPOINT_DIR=ckpt_dir, KOGEN_QUICK="1",
                    KOGEN_EPOCHS="2", KOGEN_BATCH_SIZE="8", KOGEN_MAX_TRAIN_EXAMPLES="0", KOGEN_MAX_VAL_EXAMPLES="0")
    with environ(**settings):
        m = import_file(path)
        make_args = function(m, "make_args", path)
        args = make_args()
    expect(isinstance(args, GenerationTrainArguments), f"{where(make_args)}: GenerationTrainArguments(...)를 돌려줘야 합니다.")
    for field, want in [("pretrained_model_name", "bundled"), ("downstream_corpus_root_dir", data),
                        ("downstream_model_dir", ckpt_dir), ("epochs", 2), ("batch_size", 8),
                        ("max_train_examples", None), ("downstream_corpus_name", "nsmc")]:
        expect(getattr(args, field) == want, f"{where(make_args)}: {field}가 {getattr(args, field)!r}입니다. "
                                             f"환경 변수를 반영한 값({want!r})이어야 합니다. 위에서 정한 변수를 넘기세요.")
    loaders = function(m, "make_dataloaders", path)(args, tok)
    expect(isinstance(loaders, tuple) and len(loaders) == 2,
           f"{where(m.make_dataloaders)}: (train_loader, val_loader)를 돌려주세요.")
    train_loader, val_loader = loaders
    expect(len(train_loader.dataset) == 64 and len(val_loader.dataset) == 16,
           f"{where(m.make_dataloaders)}: 학습 {len(train_loader.dataset)}개, 검증 {len(val_loader.dataset)}개입니다. "
           f"mode=\"train\"과 mode=\"test\"로 각각 만들었는지 보세요(기대: 64개, 16개).")
    batch = next(iter(train_loader))
    expect(isinstance(batch, dict) and {"input_ids", "labels"} <= set(batch) and batch["input_ids"].shape[0] == 8,
           f"{where(m.make_dataloaders)}: 배치가 input_ids·labels를 가진 크기 8의 dict가 아닙니다. "
           f"batch_size=args.batch_size, collate_fn=collate_fn을 넘기세요.")

    # a stale checkpoint of another configuration, named better than any tiny run can be: the run must set it aside
    fake_checkpoint(ckpt_dir)
    report, log = Path(tmp, "report.txt"), Path(tmp, "step4.log")
    with open(log, "w") as out:
        proc = start_script(path, report, out, **settings)
        try:
            rc = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CheckFailed("4단계가 5분 안에 끝나지 않았습니다. 작은 검사용 데이터에서는 30초면 끝나야 합니다.") from None
    if rc != 0:
        raise script_failure(path, report, log, rc)
    names = sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
    ckpts = [n for n in names if re.fullmatch(r"epoch=\d+-val_loss=\d+\.\d\d\.ckpt", n)]
    expect(ckpts, f"{ckpt_dir}에 epoch=N-val_loss=X.XX.ckpt 체크포인트가 없습니다(있는 것: {names}). "
                  f"trainer.fit(task, train_dataloaders=..., val_dataloaders=...)로 검증까지 했는지 보세요.")
    best = os.path.basename(best_checkpoint(ckpt_dir))
    expect(best != STALE_CHECKPOINT, f"체크포인트 폴더에 다른 설정으로 학습한 이전 실행의 {STALE_CHECKPOINT}가 남아, 이번 실행의 "
                                     f"결과({[n for n in ckpts if n != best]}) 대신 5단계가 그것을 씁니다. "
                                     f"Trainer를 get_trainer(args)로 만드세요: 다른 설정의 옛 체크포인트를 previous/로 옮깁니다.")
    ckpts = [best]
    trained = load_causal_lm(resolve_model("bundled"), "cpu")
    trained.load_state_dict(load_checkpoint_state_dict(str(Path(ckpt_dir, ckpts[0]))))
    before, after = val_loss(model, val_loader), val_loss(trained, val_loader)
    expect(after < before - 0.1, f"학습했는데 검증 손실이 충분히 내려가지 않았습니다({before:.3f} → {after:.3f}).")
    named = float(re.search(r"val_loss=(\d+\.\d\d)", ckpts[0]).group(1))
    expect(abs(named - after) < 0.02, f"체크포인트 이름의 val_loss({named})가 그 가중치로 잰 값({after:.3f})과 다릅니다.")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STALE_CHECKPOINT = "epoch=0-val_loss=0.01.ckpt"  # better than any real run


def fake_checkpoint(folder):
    """A Lightning-style checkpoint of the bundled model with its weights nudged, so its greedy text differs."""
    import torch
    model, _ = bundled()
    gen = torch.Generator().manual_seed(0)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    os.makedirs(folder, exist_ok=True)
    path = Path(folder, STALE_CHECKPOINT)
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 0}, path)
    return state


def post(url, body, timeout=60):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def check_sampling(fn, inference_fn, model, prompt, length):
    """The service must sample: different texts without a seed, and the top_p and temperature it gets take effect."""
    import torch
    plain = (prompt, length, length, 1.0, 0, 1.0, 0, 1.0)  # prompt, min/max_length, top_p, top_k, penalty, n-gram, T
    texts = {clean(inference_fn(*plain)) for _ in range(4)}
    expect(len(texts) > 1, f"{where(fn)}: inference_fn을 시드 없이 네 번 불렀는데 모두 같은 글입니다. 웹 서비스는 요청마다 다른 글을 "
                           f"써야 합니다: generate에 do_sample=True를 넘겨 샘플링을 켜세요.")
    p, t = 0.6, 1.4  # far enough from 1.0 that dropping either changes the text
    for seed in (11, 12, 13):
        torch.manual_seed(seed)
        got = inference_fn(prompt, length, length, p, 0, 1.0, 0, t)
        ref = functools.partial(reference, prompt, seed=seed, model=model, do_sample=True, top_k=0, min_length=length,
                                max_length=length)
        same(got, ref(top_p=p, temperature=t)[0], fn,
             f"torch.manual_seed({seed}) 뒤 inference_fn({prompt!r}, ..., top_p={p}, top_k=0, temperature={t})",
             "받은 top_p와 temperature를 그대로 generate에 넘기세요(top_p=top_p, temperature=temperature).",
             [(ref(top_p=1.0, temperature=t)[0], "top_p가 반영되지 않았습니다: generate에 top_p=top_p를 넘기세요."),
              (ref(top_p=p, temperature=1.0)[0], "temperature가 반영되지 않았습니다: generate에 temperature=temperature를 "
                                                 "넘기세요.")])


def check_step5(path, tmp):
    import torch

    from .models import load_causal_lm, resolve_model
    model, tok = bundled()
    ckpt_dir, empty = str(Path(tmp, "checkpoints")), str(Path(tmp, "none"))
    state = fake_checkpoint(ckpt_dir)
    finetuned = load_causal_lm(resolve_model("bundled"), "cpu")
    finetuned.load_state_dict(state)
    with environ(KOGEN_MODEL="bundled", KOGEN_CHECKPOINT_DIR=ckpt_dir):
        m = import_file(path)
    load = function(m, "load_finetuned", path)
    name = "transformer.h.0.attn.c_attn.weight"
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = load("bundled", ckpt_dir, "cpu")
        base = load("bundled", empty, "cpu")
    expect(torch.equal(loaded[0].state_dict()[name].cpu(), state[name]),
           f"{where(load)}: 체크포인트의 가중치가 모델에 들어가지 않았습니다. GenerationDeployArguments(...)로 체크포인트를 "
           f"찾고 model.load_state_dict(load_checkpoint_state_dict(args.downstream_model_checkpoint_fpath))를 부르세요.")
    expect(torch.equal(base[0].state_dict()[name].cpu(), model.state_dict()[name]),
           f"{where(load)}: 체크포인트가 없을 때는 기본 모델을 그대로 돌려줘야 합니다.")

    prompt = "이 영화는"
    length = len(tok.encode(prompt)) + 12
    want = reference(prompt, model=finetuned, do_sample=True, top_k=1, min_length=length, max_length=length)[0]
    inference_fn = function(m, "make_inference_fn", path)(loaded[0], loaded[1], "cpu")
    # positionally, as the web app calls it; top_k=1 makes sampling pick the top token: a greedy, checkable text
    got = clean(inference_fn(prompt, length, length, 1.0, 1, 1.0, 0, 1.0))
    expect(want in got, f"{where(m.make_inference_fn)}: inference_fn('{prompt}', min_length={length}, "
                        f"max_length={length}, top_p=1.0, top_k=1, ...)의 결과가 기대와 다릅니다.\n"
                        f"   기대: {want}\n   실제: {got}\n"
                        f"   힌트: 받은 값을 그대로 generate에 넘기세요(do_sample=True, min_length=min_length, "
                        f"max_length=max_length, top_p=top_p, top_k=top_k, ...).")

    check_sampling(m.make_inference_fn, inference_fn, finetuned, prompt, length)

    port, report, log = free_port(), Path(tmp, "report.txt"), Path(tmp, "step5.log")
    body = dict(prompt=prompt, min_length=length, max_length=length, top_p=1.0, top_k=1, repetition_penalty=1.0,
                no_repeat_ngram_size=0, temperature=1.0)
    with open(log, "w") as out:
        proc = start_script(path, report, out, KOGEN_PORT=port, KOGEN_CHECKPOINT_DIR=ckpt_dir)
        try:
            deadline = time.time() + 180
            while True:
                if proc.poll() is not None:
                    raise script_failure(path, report, log, proc.returncode)
                try:
                    answer = post(f"http://127.0.0.1:{port}/api", body)
                    break
                except urllib.error.HTTPError as e:
                    detail = e.read().decode(errors="replace")[:300]
                    raise CheckFailed(f"POST /api가 {e.code} 오류로 답했습니다: {detail}") from None
                except OSError:  # not listening yet
                    if time.time() > deadline:
                        raise CheckFailed(f"서버가 3분 안에 포트 {port}에서 열리지 않았습니다. "
                                          f"app.run(host=HOST, port=PORT)를 불렀는지 보세요.") from None
                    time.sleep(0.5)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = answer.get("result") if isinstance(answer, dict) else None
    expect(isinstance(result, str) and want in clean(result),
           f"POST /api의 답이 기대와 다릅니다.\n   기대(체크포인트 모델의 결과 포함): {want}\n   실제: {answer}\n"
           f"   힌트: get_web_service_app(inference_fn, model=model, ...)에 체크포인트를 넣은 모델과 inference_fn을 넘기세요.")


CHECKS = {1: check_step1, 2: check_step2, 3: check_step3, 4: check_step4, 5: check_step5}


def check_step(step, path):
    """(ok, Korean message) for the file at `path` as step `step`; never raises for anything in the file."""
    import torch
    from transformers.utils import logging as hf_logging
    if not Path(path).exists():
        return False, f"{display_path(str(path))} 파일이 없습니다. 저장소 루트에서 실행하세요."
    threads, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its warnings go to a handler we cannot redirect; the check says what matters
    torch.set_num_threads(1)  # the bundled model is tiny: one thread beats the sync cost of many, even on a busy laptop
    tmp = tempfile.mkdtemp(prefix=f"kogen-check{step}-")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fn = CHECKS[step]
            fn(path, tmp) if step in (4, 5) else fn(path)
        return True, ""
    except CheckFailed as e:
        return False, str(e)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: B902 - a TODO (SystemExit), a syntax error, anything
        return False, explain(e, path)
    finally:
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)
        shutil.rmtree(tmp, ignore_errors=True)


def pad(text, width):
    """Left-align for a terminal, where Hangul is two columns wide."""
    return text + " " * max(0, width - sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text))




def parse_steps(names):
    steps = []
    for name in names:
        m = re.fullmatch(r"(?:step)?([1-5])(?:_\w+)?(?:\.py)?", Path(name).name, re.I)  # step1, Step1, 1, step1_….py
        if not m:
            raise ValueError(f"'{name}'은(는) 없는 단계입니다. step1 … step5 중에서 고르세요(예: kogen check step2).")
        steps.append(int(m.group(1)))
    return steps or list(STEPS)


def main(steps=(), solutions=False, root=None):
    """`kogen check [stepN ...] [--solutions]`: returns the exit code (0: all passed)."""
    try:
        wanted = parse_steps(steps)
    except ValueError as e:
        print(f"kogen check: {e}", file=sys.stderr)
        return 2
    root = Path(root) if root else course_root()
    print(f"kogen check — {'정답 파일' if solutions else '실습 파일'}을 내장 소형 모델로 채점합니다 "
          f"(출력 문구가 아니라 동작을 봅니다)\n")
    passed = 0
    for step in wanted:
        path = solution_path(step, root) if solutions else exercise_path(step, root)
        print(f"  {step}단계 {pad(TITLES[step], 14)} {display_path(str(path))} ... ", end="", flush=True)
        start = time.perf_counter()
        ok, message = check_step(step, path)
        seconds = time.perf_counter() - start
        if not ok:
            print(f"❌ ({seconds:.1f}초)\n")
            print("\n".join("     " + line for line in message.splitlines()))
            print(f"\n     고친 뒤 다시: kogen check step{step}{' --solutions' if solutions else ''}")
            break
        passed += 1
        print(f"✅ ({seconds:.1f}초)")
    bar = "■" * passed + "□" * (len(wanted) - passed)
    print(f"\n진행 [{bar}] {passed}/{len(wanted)}")
    if passed < len(wanted):
        return 1
    if len(wanted) == len(STEPS):
        print("🎉 다섯 단계를 모두 통과했습니다! 토큰화에서 웹 서비스까지, 한국어 GPT-2로 글을 만드는 전 과정을 직접 짰습니다.\n"
              "   더 해 볼 것: README_stepwise_learning.md의 '더 나아가기'(contrastive search, 평가 지표, 필터링).")
    else:
        nxt = max(wanted) + 1
        print("✅ 요청한 단계를 모두 통과했습니다." + (f" 다음: kogen check step{nxt}" if nxt in STEPS else ""))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        sys.exit(run_file(sys.argv[2], sys.argv[3]))
    sys.exit(main(sys.argv[1:]))
