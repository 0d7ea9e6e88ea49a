"""Sentiment control: no control, the label word as prefix, FUDGE at several strengths, prefix + FUDGE,
on the base bundled model and a `kogen train --quick` model; and prompt design on the base model.

    python benchmarks/sentiment_control.py --data-dir ../shared/data/nsmc --tuned checkpoints/quick/hf_model

100 samples per label (20 neutral openings x 5; top-k 50, top-p 0.92; 32 new tokens; seeded).
The judge is NOT the FUDGE discriminator: a TF-IDF char 1-3 gram + logistic-regression classifier
trained on NSMC train (its NSMC test accuracy is printed). Per row: the share of samples whose
judged sentiment matches the asked label, the continuations' perplexity under the *base* model
(the cost of steering; given the opening, without any label words), and distinct-2 (eojeol).
Writes benchmarks/results/sentiment_control.{md,json}.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kogen.evaluation.compare import PROMPT_STYLES, control_row, markdown_table, prompt_style_row  # noqa: E402
from kogen.evaluation.judge import train_judge  # noqa: E402
from kogen.generation import PARAM_BY_NAME  # noqa: E402
from kogen.models import load_model  # noqa: E402

COLUMNS = ["match", "match 긍정", "match 부정", "ppl (base)", "ppl ×", "distinct-2", "seconds"]


def control_rows(model, tok, judge, base, strengths, default):
    settings = {"no control": dict(), "prefix only": dict(prefix=True)}
    settings.update({f"FUDGE λ={s:g}": dict(strength=s) for s in strengths})
    settings[f"prefix + FUDGE λ={default:g}"] = dict(prefix=True, strength=default)
    rows = {}
    for name, kw in settings.items():
        rows[name] = control_row(model, tok, judge, base, **kw)
        print(f"  {name}: match {rows[name]['match']:.2f}, ppl {rows[name]['ppl (base)']:.1f} "
              f"({rows[name]['seconds']:.0f} s)", flush=True)
    for row in rows.values():  # the cost of steering, relative to no control on the same model
        row["ppl ×"] = row["ppl (base)"] / rows["no control"]["ppl (base)"]
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("KOGEN_NSMC_DIR", "../shared/data/nsmc"))
    p.add_argument("--base", default="bundled")
    p.add_argument("--tuned", default="checkpoints/quick/hf_model")
    p.add_argument("--strengths", default="0.5,1,2,4,8")
    p.add_argument("--default-strength", type=float, default=PARAM_BY_NAME["control_strength"].default)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sentiment_control"))
    a = p.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    judge, acc, secs = train_judge(a.data_dir)
    print(f"judge: TF-IDF char 1-3 + logistic regression, NSMC test accuracy {acc:.3f} ({secs:.0f} s)", flush=True)
    base = load_model(a.base, "cpu")[:2]
    strengths = [float(s) for s in a.strengths.split(",")]
    results, md = {}, [f"judge: TF-IDF char 1-3 + LR on NSMC train, NSMC test accuracy {acc:.3f}; 100 samples per "
                       f"label; ppl under the base model `{a.base}`; ppl × = relative to no control"]
    for title, name in (("base", a.base), ("quick fine-tune", a.tuned)):
        if not Path(name).exists() and name != "bundled":
            print(f"skipping {title}: {name} not found (run kogen train --quick first)")
            continue
        print(f"{title}: {name}", flush=True)
        model, tok = load_model(name, "cpu")[:2]
        rows = control_rows(model, tok, judge, base, strengths, a.default_strength)
        results[title] = rows
        md += [f"\n### {title} (`{name}`)\n", markdown_table(rows, COLUMNS, first="control")]
    print("prompt design (base model, no control)", flush=True)
    styles = {style: prompt_style_row(*base, judge, style, data_dir=a.data_dir) for style in PROMPT_STYLES}
    results["prompt design"] = styles
    md += ["\n### prompt design on the base model (no control)\n",
           markdown_table(styles, ["match", "match 긍정", "match 부정", "ppl (base)", "distinct-2"], first="prompt"),
           "\nexample prompts (긍정): " + " · ".join(f"`{s}`: {r['example prompt']!r}" for s, r in styles.items())]
    md.append("\n### samples (first 2 per label)\n")
    for title, rows in results.items():
        for name, row in rows.items():
            md.append(f"- {title} / {name}: " + " / ".join(row["samples"][:2] + row["samples"][100:102]))
    text = "\n".join(md) + "\n"
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".md").write_text(text, encoding="utf-8")
    Path(a.out + ".json").write_text(json.dumps(dict(judge_accuracy=acc, results=results), ensure_ascii=False,
                                                indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
