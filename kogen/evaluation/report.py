"""`kogen eval`: generate with models x decoding presets on the same prompts, measure, and write a report.

    kogen eval --model bundled --model checkpoints/quick/hf_model --preset greedy --preset recommended \
        --prompts nsmc-test:200 --max-new-tokens 48 --seed 1 --out reports/eval1

Writes OUT/report.md (Korean), OUT/results.json and OUT/*.png. `evaluate()` computes, `write_report()`
turns its results into files (a pure function of them), so a test can check either.
"""
import json
import os
import time
from pathlib import Path

from ..generation import PRESETS, ParamError
from .compare import NEUTRAL_OPENINGS, continuations, control_row, nsmc_openings
from .metrics import perplexity, repetition_report
from .text_metrics import bleu_char, chrf, last_token_features, mauve_score, rouge, self_bleu

METRIC_NOTES = {  # what each number measures, in the report (Korean)
    "ppl (self)": "이어 쓴 부분의 perplexity, 만든 모델 자신으로 잼(모델마다 잣대가 달라 서로 비교 불가)",
    "ppl (ref)": "같은 부분의 perplexity, 모든 시스템에 공통인 참조 모델로 잼(서로 비교 가능; 낮을수록 참조 모델에게 자연스러움)",
    "rep-2/3/4, diversity": "Su et al.(2022): 글 안에서 되풀이된 n-gram 비율(%)과 (1-rep2)(1-rep3)(1-rep4), 어절 단위",
    "distinct-1/2": "모든 글을 합쳐 서로 다른 n-gram의 비율, 어절 단위",
    "self-BLEU": "각 글을 나머지 글들과 견준 BLEU(문자 단위): 높을수록 시스템이 비슷한 말만 함",
    "BLEU / chrF": "원래 리뷰의 나머지와 견준 sacrebleu BLEU(tokenize='char')와 chrF. 열린 생성에서 정답은 하나가 아니므로 "
                   "낮아도 나쁜 글이라는 뜻은 아님",
    "ROUGE-1/2/L": "rouge-score F1, 한글을 지우지 않는 어절 토크나이저로(기본 토크나이저는 한글을 모두 버림)",
    "MAUVE": "사람 글(원래 리뷰)과 생성 글의 분포가 얼마나 겹치나(0~1, 높을수록 사람 글과 비슷), 참조 모델의 마지막 은닉 "
             "상태를 특징으로, 군집 수 = 글 수/40. 글이 수백 개뿐이면 흔들리니 같은 설정끼리만 비교",
    "sentiment": "'긍정 …'/'부정 …'으로 시작한 프롬프트의 이어 쓴 글을 독립 판정기(TF-IDF + 로지스틱 회귀)가 같은 감정으로 본 비율",
}


def parse_prompts(spec, tokenizer, seed=0, data_dir=None):
    """(prompts, references or None): 'nsmc-test:N' = openings of NSMC test reviews and their rest;
    otherwise a UTF-8 text file, one prompt per line."""
    if spec.startswith("nsmc-test:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ParamError("prompts", f"'{spec}': nsmc-test: 뒤에는 개수를 쓰세요(예: nsmc-test:200).") from None
        if n < 1:
            raise ParamError("prompts", f"'{spec}': 개수는 1 이상이어야 합니다.")
        prompts, rests = nsmc_openings(tokenizer, n, data_dir=data_dir, seed=seed)
        if not prompts:
            raise ParamError("prompts", "NSMC test에 앞 5토큰과 나머지로 나눌 만큼 긴 리뷰가 없습니다. "
                                        "KOGEN_NSMC_DIR(--data-dir)가 진짜 NSMC를 가리키는지 확인하세요.")
        return prompts, rests
    path = Path(spec)
    if not path.is_file():
        raise ParamError("prompts", f"프롬프트 파일이 없습니다: {spec}. 한 줄에 프롬프트 하나인 텍스트 파일이나 "
                                    f"nsmc-test:200 처럼 쓰세요.")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ParamError("prompts", f"{spec}에 프롬프트가 한 줄도 없습니다.")
    return prompts, None


def system_name(model_name, preset):
    short = "bundled" if model_name == "bundled" else Path(model_name.rstrip("/")).name or model_name
    if short == "hf_model":  # checkpoints/quick/hf_model -> quick/hf_model
        short = "/".join(Path(model_name.rstrip("/")).parts[-2:])
    return f"{short}:{preset}"


def evaluate(systems, prompts, references, reference, judge=None, max_new_tokens=48, seed=0, progress=None,
             sentiment_openings=NEUTRAL_OPENINGS):
    """systems: {name: (model, tokenizer, preset)}; reference: (model, tokenizer) shared by all.
    Returns {"systems": {name: metrics}, "samples": {name: [texts]}}."""
    results, samples = {}, {}
    human_feats = None
    if references is not None:
        human_feats = last_token_features(*reference, [p + r for p, r in zip(prompts, references)])
    for name, (model, tok, preset) in systems.items():
        start = time.perf_counter()
        decoding = PRESETS[preset]["params"]
        conts = []
        for i, prompt in enumerate(prompts):
            conts += continuations(model, tok, prompt, dict(decoding, max_new_tokens=max_new_tokens, seed=seed + i))[:1]
            if progress:
                progress.update(1)
        row = repetition_report(conts)
        row["self-BLEU"] = self_bleu(conts, seed=seed)
        row["ppl (self)"] = perplexity(model, tok, prompts, conts)
        row["ppl (ref)"] = perplexity(*reference, prompts, conts)
        if references is not None:
            row["BLEU"], row["chrF"] = bleu_char(conts, references), chrf(conts, references)
            row.update({k.replace("rouge", "ROUGE-"): v for k, v in rouge(conts, references).items()})
            try:
                feats = last_token_features(*reference, [p + c for p, c in zip(prompts, conts)])
                row["MAUVE"] = mauve_score(human_feats, feats, seed=seed)
            except ImportError as e:
                row["MAUVE"] = None
                row["MAUVE 없음"] = f"mauve-text를 불러올 수 없습니다({e}). pip install mauve-text faiss-cpu"
        if judge is not None:
            s = control_row(model, tok, judge, reference, prefix=True, openings=sentiment_openings, seed=seed,
                            decoding=decoding, max_new_tokens=min(32, max_new_tokens))
            row["sentiment"], row["sentiment 긍정"], row["sentiment 부정"] = s["match"], s["match 긍정"], s["match 부정"]
        row["seconds"] = time.perf_counter() - start
        results[name] = row
        samples[name] = [p + c for p, c in zip(prompts, conts)]
    return {"systems": results, "samples": samples}


def write_charts(results, out):
    """Two PNGs: repetition per system, and the headline numbers per system."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    names = list(results)
    rows = [results[n] for n in names]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.6))
    width = 0.25
    for j, key in enumerate(("rep-2", "rep-3", "rep-4")):
        ax.bar([i + (j - 1) * width for i in range(len(names))], [r[key] for r in rows], width, label=key)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("% repeated n-grams (eojeol)")
    ax.set_title("repetition (lower = less looping)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "repetition.png", dpi=110)
    plt.close(fig)

    panels = [("ppl (ref)", "perplexity under the reference model"), ("diversity", "diversity (Su et al.)"),
              ("chrF", "chrF vs the human rest"), ("sentiment", "sentiment match (label prompts)")]
    panels = [(k, t) for k, t in panels if all(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        ax.bar(range(len(names)), [r[key] for r in rows], color="#2f6fd0")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "overview.png", dpi=110)
    plt.close(fig)
    return ["repetition.png", "overview.png"]


def fmt(v):
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.2f}" if isinstance(v, float) else str(v)


def write_report(result, meta, out):
    """report.md + results.json + charts into `out` (created); returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    systems = result["systems"]
    charts = write_charts(systems, out)
    columns = [c for c in ("ppl (self)", "ppl (ref)", "rep-2", "rep-3", "rep-4", "diversity", "distinct-1", "distinct-2",
                           "self-BLEU", "BLEU", "chrF", "ROUGE-1", "ROUGE-2", "ROUGE-L", "MAUVE", "sentiment")
               if any(c in r for r in systems.values())]
    lines = ["# kogen eval 보고서", "", f"- 명령: `{meta['command']}`",
             f"- 프롬프트: {meta['prompts']} ({meta['n_prompts']}개), 새 토큰 최대 {meta['max_new_tokens']}개, 시드 {meta['seed']}",
             f"- 참조 모델(공통 perplexity, MAUVE 특징): {meta['reference']}",
             f"- 판정기: {meta.get('judge', '없음')}", "",
             "| 시스템 | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for name, row in systems.items()]
    missing = {r["MAUVE 없음"] for r in systems.values() if "MAUVE 없음" in r}
    if missing:
        lines += ["", f"MAUVE가 없는 이유: {missing.pop()}"]
    if meta.get("no_references"):
        lines += ["", "BLEU·chrF·ROUGE·MAUVE는 없습니다: 프롬프트 파일에는 견줄 사람 글(참조)이 없습니다. nsmc-test:N을 쓰면 "
                      "원래 리뷰의 나머지를 참조로 씁니다."]
    lines += ["", "## 지표 읽는 법", ""] + [f"- **{k}**: {v}" for k, v in METRIC_NOTES.items()]
    lines += ["", "## 그림", ""] + [f"![{c}]({c})" for c in charts]
    lines += ["", "## 예시 (시스템마다 처음 3개)", ""]
    for name, texts in result["samples"].items():
        lines += [f"### {name}", ""] + [f"{i + 1}. {t}" for i, t in enumerate(texts[:3])] + [""]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(dict(meta=meta, **result), ensure_ascii=False, indent=1),
                                      encoding="utf-8")
    return [out / "report.md", out / "results.json"] + [out / c for c in charts]


def run_eval(models, presets, prompts_spec, max_new_tokens=48, seed=0, out="reports/eval", reference="bundled",
             data_dir=None, sentiment=True, command="kogen eval"):
    """What `kogen eval` does: load, check, generate, measure, write. Returns the report's path."""
    from tqdm import tqdm

    from ..models import load_model
    from ..generation import check_params
    check_params(dict(max_new_tokens=max_new_tokens))  # fail before the slow loads
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ParamError("preset", f"'{unknown[0]}'은(는) 없는 프리셋입니다. 쓸 수 있는 것: {', '.join(PRESETS)}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ParamError("out", f"{out}은(는) 폴더가 아니라 파일입니다. 다른 --out을 주세요.")
    loaded = {m: load_model(m)[:2] for m in dict.fromkeys(models)}
    ref = loaded.get(reference) or load_model(reference)[:2]
    prompts, references = parse_prompts(prompts_spec, loaded[models[0]][1], seed, data_dir)
    judge_note, judge = None, None
    if sentiment:
        from .judge import train_judge
        judge, acc, _ = train_judge(data_dir)
        judge_note = f"TF-IDF 문자 1~3gram + 로지스틱 회귀, NSMC train으로 학습, NSMC test 정확도 {acc:.3f}"
    systems = {system_name(m, p): (*loaded[m], p) for m in loaded for p in presets}
    with tqdm(total=len(systems) * len(prompts), desc="kogen eval", unit="글") as bar:
        result = evaluate(systems, prompts, references, ref, judge, max_new_tokens, seed, bar)
    meta = dict(command=command, prompts=prompts_spec, n_prompts=len(prompts), max_new_tokens=max_new_tokens, seed=seed,
                reference=reference, judge=judge_note or "없음(--no-sentiment)", no_references=references is None,
                models=list(loaded), presets=list(presets))
    write_report(result, meta, out)
    return Path(out) / "report.md"
