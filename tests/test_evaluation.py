"""The metrics on hand-computed examples, perplexity against the model's own loss, and the judge."""
import math

import pytest
import torch

from kogen.evaluation.compare import PROMPT_STYLES, markdown_table
from kogen.evaluation.judge import match_share, train_judge
from kogen.evaluation.metrics import (continuation_nll, distinct_n, diversity, eojeol, perplexity, rep_n,
                                      repetition_report)


def test_rep_n_counts_repeats_inside_each_text():
    # "a b a b": bigrams ab, ba, ab -> 2 unique of 3; "c d": 1 of 1 -> 1 - 3/4
    assert rep_n([["a", "b", "a", "b"]], 2) == pytest.approx(100 / 3)
    assert rep_n([["a", "b", "a", "b"], ["c", "d"]], 2) == pytest.approx(25.0)
    assert rep_n([["a", "b"], ["a", "b"]], 2) == 0.0, "repeats across texts are not rep-n's business"
    assert rep_n([["a"]], 2) == 0.0, "no n-grams at all: nothing repeats"


def test_diversity_is_the_product_over_2_3_4():
    toks = [eojeol("정말 정말 정말 정말 재밌다")]
    want = (1 - rep_n(toks, 2) / 100) * (1 - rep_n(toks, 3) / 100) * (1 - rep_n(toks, 4) / 100)
    assert diversity(toks) == pytest.approx(want)
    assert rep_n(toks, 2) == pytest.approx(100 * (1 - 2 / 4))  # 정말정말 x3, 정말재밌다 -> 2 unique of 4
    assert diversity([eojeol("서로 다른 네 어절")]) == 1.0


def test_distinct_n_is_across_all_texts():
    assert distinct_n([["a", "b"], ["a", "b"]], 1) == 0.5
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5
    assert distinct_n([["a", "b", "c"]], 2) == 1.0


def test_repetition_report_tokenizes_korean_by_eojeol():
    r = repetition_report(["이 영화 이 영화 이 영화"])
    assert r["distinct-1"] == pytest.approx(2 / 6) and r["rep-2"] > 50


def test_perplexity_equals_exp_of_the_models_own_loss_on_the_continuation(bundled):
    model, tok = bundled
    prompt, cont = "이 영화는", " 정말 재밌게 봤습니다"
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    ids = torch.tensor([tok(prompt + cont, add_special_tokens=False).input_ids])
    labels = ids.clone()
    labels[0, :len(p_ids)] = -100
    with torch.no_grad():
        loss = model(ids, labels=labels).loss.item()
    assert perplexity(model, tok, [prompt], [cont]) == pytest.approx(math.exp(loss), rel=1e-4)
    # batching and right padding change nothing
    total, count = continuation_nll(model, tok, [prompt, "배우들의 연기가"], [cont, " 최고"], batch_size=2)
    total1, count1 = continuation_nll(model, tok, [prompt], [cont])
    total2, count2 = continuation_nll(model, tok, ["배우들의 연기가"], [" 최고"])
    assert count == count1 + count2 and total == pytest.approx(total1 + total2, rel=1e-4)


def test_judge_learns_sentiment_and_match_share_counts_it(nsmc_dir):
    judge, acc, _ = train_judge(nsmc_dir)
    assert acc == 1.0, "the tiny fixture repeats 8 reviews: train and test are the same sentences"
    assert match_share(judge, ["정말 재밌어요 최고의 영화", "시간 아까운 최악의 영화"], "긍정") == 0.5
    assert match_share(judge, ["지루하고 재미없다"], "부정") == 1.0


def test_prompt_styles_carry_the_label_and_few_shot_uses_the_separator_the_model_was_trained_with():
    assert PROMPT_STYLES["label word"]("부정", "이 영화는", []) == "부정 이 영화는"
    assert "10점" in PROMPT_STYLES["rating"]("긍정", "이 영화는", []) and "1점" in PROMPT_STYLES["rating"]("부정", "x", [])
    assert PROMPT_STYLES["few-shot"]("긍정", "이 영화는", ["좋다", "최고"]) == "좋다</s>최고</s>이 영화는"


def test_markdown_table_rounds_floats():
    assert markdown_table({"greedy": {"rep-2": 12.3456}}, ["rep-2"]).splitlines()[-1] == "| greedy | 12.35 |"
