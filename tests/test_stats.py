"""kogen.evaluation.stats against values computed by hand or found in textbooks."""
import math

import numpy as np
import pytest

from kogen.evaluation.stats import (bradley_terry, bt_scores, elo, two_proportion_z, votes_to_separate, wilson,
                                    win_matrix)


def test_wilson_interval_matches_the_textbook_values():
    # 8/10: center (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.7167, half-width 0.2266 (Agresti & Coull 1998)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # 0/10: the upper end is z²/n / (1 + z²/n) = 0.2775, where the normal interval would be [0, 0]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0), "no data: the whole range"


def test_two_proportion_z_test_matches_a_hand_computation():
    # 45/100 vs 30/100: pooled 0.375, se = sqrt(.375 * .625 * 2/100) = 0.06847, z = 0.15 / se = 2.1909
    z, p = two_proportion_z(45, 100, 30, 100)
    assert z == pytest.approx(2.1909, abs=1e-4) and p == pytest.approx(0.02846, abs=1e-4)
    assert two_proportion_z(30, 100, 45, 100) == pytest.approx((-z, p)), "swapping the groups flips z only"
    assert two_proportion_z(5, 10, 50, 100) == (0.0, 1.0)
    assert two_proportion_z(0, 10, 0, 12) == (0.0, 1.0), "no successes anywhere: nothing to test"
    assert two_proportion_z(3, 0, 1, 10) == (0.0, 1.0)


def test_bradley_terry_recovers_exact_strengths_from_expected_counts():
    # strengths 4:2:1, 30 games per pair, i beats j in exactly 30·p_i/(p_i+p_j) of them: the MLE is 4:2:1
    W = np.array([[0, 20, 24], [10, 0, 20], [6, 10, 0]])
    p = bradley_terry(W, prior=0)
    assert p == pytest.approx([2, 1, 0.5], rel=1e-6), "geometric mean 1: 4:2:1 becomes 2:1:0.5"


def test_bradley_terry_recovers_the_order_of_three_systems_from_sampled_votes():
    rng = np.random.default_rng(0)
    strength = [3.0, 1.5, 0.5]
    votes = []
    for _ in range(300):
        i, j = rng.choice(3, 2, replace=False)
        won = rng.random() < strength[i] / (strength[i] + strength[j])
        votes.append((i, j, "a" if won else "b"))
    scores, low, high = bt_scores(3, votes, rounds=100)
    assert list(np.argsort(-scores)) == [0, 1, 2], scores
    assert np.all(low <= scores) and np.all(scores <= high), (low, scores, high)
    assert low[0] > high[2], "300 votes separate the strongest from the weakest"
    # Elo scale: a factor 2 in strength is 400·log10(2) ≈ 120 points
    assert elo(np.array([2.0]))[0] - elo(np.array([1.0]))[0] == pytest.approx(120.41, abs=0.01)


def test_ties_count_half_each_way_and_a_system_that_never_won_stays_finite():
    W = win_matrix(3, [(0, 1, "tie"), (0, 2, "a"), (1, 2, "both_bad"), (2, 0, "b")])
    assert W.tolist() == [[0, 0.5, 2], [0.5, 0, 0.5], [0, 0.5, 0]]
    p = bradley_terry(W)
    assert np.all(np.isfinite(p)) and p[0] > p[1] > p[2], p


def test_votes_to_separate_is_the_textbook_sample_size():
    # p = 0.6 against 0.5 at 5% two-sided with 80% power needs n = ((1.96·0.5 + 0.8416·sqrt(.24)) / 0.1)² ≈ 194
    need = math.ceil(((1.959964 * 0.5 + 0.841621 * math.sqrt(0.24)) / 0.1) ** 2)
    assert need == 194
    assert votes_to_separate(30, 20) == need - 50
    assert votes_to_separate(60, 40) == 0, "z = 2.0 already separates them"
    assert votes_to_separate(25, 25) is None and votes_to_separate(0, 0) is None, "no difference seen: no estimate"
