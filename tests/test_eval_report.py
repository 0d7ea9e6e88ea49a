"""Korean-correct text metrics on hand-checked examples, and `kogen eval` end to end on the bundled model."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from kogen.evaluation.text_metrics import HangulTokenizer, bleu_char, chrf, mauve_score, rouge, self_bleu

SAME = "이 영화는 정말 재밌어요 최고의 영화"


def test_identical_korean_texts_score_bleu_100_and_rouge_l_1():
    assert bleu_char([SAME], [SAME]) == pytest.approx(100.0)
    assert chrf([SAME], [SAME]) == pytest.approx(100.0)
    assert rouge([SAME], [SAME]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_disjoint_korean_texts_score_zero():
    assert bleu_char(["가나다라"], ["마바사아"]) == 0.0
    assert chrf(["가나다라"], ["마바사아"]) == 0.0
    assert rouge(["가나 다라"], ["마바 사아"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_keeps_hangul_where_rouge_scores_default_tokenizer_drops_it():
    from rouge_score import rouge_scorer
    default = rouge_scorer.RougeScorer(["rouge1"]).score("정말 좋다", "정말 싫다")["rouge1"].fmeasure
    assert default == 0.0, "the trap this module exists for: Korean becomes no tokens at all"
    assert HangulTokenizer().tokenize("ㅋㅋ 정말 좋다!! 10점") == ["ㅋㅋ", "정말", "좋다", "10", "점"]
    # one shared word of two on each side: P = R = F1 = 1/2
    assert rouge(["정말 좋다"], ["정말 싫다"])["rouge1"] == pytest.approx(0.5)
    # LCS of (a b c d) and (a c d): 3 -> P = 3/4, R = 1, F1 = 6/7
    assert rouge(["가 나 다 라"], ["가 다 라"])["rougeL"] == pytest.approx(6 / 7)


def test_bleu_char_on_a_hand_computed_example():
    # "가나다라마" vs "가나다라마바" on characters: every 1-4 gram of the hypothesis is in the reference
    # (precisions 1), so BLEU = brevity penalty = exp(1 - 6/5)
    assert bleu_char(["가나다라마"], ["가나다라마바"]) == pytest.approx(100 * math.exp(1 - 6 / 5))
    # spaces are not characters to match: the same letters spaced differently still score 100
    assert bleu_char(["가나 다라"], ["가나다라"]) == pytest.approx(100.0)


def test_self_bleu_is_100_for_copies_and_lower_for_different_texts():
    assert self_bleu([SAME, SAME, SAME]) == pytest.approx(100.0)
    assert self_bleu([SAME, "배우들 연기가 너무 좋았다", "시간 아까운 최악의 영화"]) < 50


def test_mauve_separates_distributions():
    rng = np.random.default_rng(0)
    p = rng.normal(0, 1, (200, 8))
    assert mauve_score(p, rng.normal(0, 1, (200, 8))) > 0.9
    assert mauve_score(p, rng.normal(4, 1, (200, 8))) < 0.2


def long_review_nsmc(folder):
    """NSMC files whose reviews are long enough to cut into an opening and a rest (three tiny reviews each)."""
    from kogen.check import TINY_REVIEWS
    folder.mkdir()
    for name, n in (("ratings_train.txt", 80), ("ratings_test.txt", 20)):
        rows = ["id\tdocument\tlabel"]
        for i in range(n):
            label = str(i % 2)
            review = " ".join(TINY_REVIEWS[label][(i + k) % 4] for k in range(3))
            rows.append(f"{i}\t{review}\t{label}")
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(folder)


def test_kogen_eval_writes_a_deterministic_report(tmp_path):
    nsmc_dir = long_review_nsmc(tmp_path / "nsmc")

    def run(out):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "KOGEN_NSMC_DIR": nsmc_dir}
        return subprocess.run([sys.executable, "-m", "kogen", "eval", "--model", "bundled", "--preset", "greedy",
                                "--preset", "top_k", "--prompts", "nsmc-test:6", "--max-new-tokens", "12",
                                "--seed", "1", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    r = run(tmp_path / "a")
    assert r.returncode == 0, r.stderr[-3000:]
    names = set(os.listdir(tmp_path / "a"))
    assert {"report.md", "results.json", "repetition.png", "overview.png"} <= names
    report = (tmp_path / "a" / "report.md").read_text(encoding="utf-8")
    assert "| bundled:greedy |" in report and "| bundled:top_k |" in report and "ROUGE-L" in report
    res = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    row = res["systems"]["bundled:top_k"]
    for key in ("ppl (self)", "ppl (ref)", "rep-2", "diversity", "distinct-2", "self-BLEU", "BLEU", "chrF",
                "ROUGE-L", "MAUVE", "sentiment"):
        assert key in row, key
    assert (tmp_path / "a" / "repetition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = json.loads((run(tmp_path / "b").returncode == 0 and (tmp_path / "b" / "results.json")).read_text())
    assert again["samples"] == res["samples"], "the same --seed gives the same texts"


@pytest.mark.parametrize("argv, words", [
    (["--preset", "fastest"], "없는 프리셋"),
    (["--prompts", "no-such-file.txt"], "프롬프트 파일이 없습니다"),
    (["--prompts", "nsmc-test:many"], "개수"),
    (["--max-new-tokens", "0"], "max_new_tokens"),
])
def test_bad_eval_input_is_one_korean_line(argv, words, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "kogen", "eval", "--no-sentiment", "--out", str(tmp_path / "o"), *argv],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
