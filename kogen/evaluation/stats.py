"""The statistics behind human evaluation and A/B tests: plain math and numpy, each with its formula.

    wilson(8, 10)                        -> (0.490, 0.943)  95% interval for a proportion
    two_proportion_z(45, 100, 30, 100)   -> (2.19, 0.028)   z and two-sided p-value
    win_matrix(3, votes)                 -> W[i, j]: how often system i beat system j (a tie is half each way)
    bradley_terry(W)                     -> strengths p, geometric mean 1
    bt_scores(3, votes, rounds=200)      -> Elo-scale scores with bootstrap 95% intervals
    votes_to_separate(30, 20)            -> how many more head-to-head votes before the leader is clearly ahead

A vote is (i, j, choice) with choice "a" (i won), "b" (j won), "tie" or "both_bad".
"""
import math

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%
Z80_POWER = 0.8416212335729143  # its 80% quantile: 80% power in the sample-size formula


def wilson(k, n, z=Z95):
    """Wilson score interval for k successes in n trials (Wilson 1927):
        (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n),  p = k/n.
    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at 0/n or n/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def normal_two_sided_p(z):
    """P(|Z| >= |z|) for a standard normal Z: erfc(|z|/√2)."""
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z(k1, n1, k2, n2):
    """Pooled two-proportion z-test of p1 = p2:
        z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2)),  p = (k1 + k2)/(n1 + n2).
    Returns (z, two-sided p-value); (0, 1) when there is nothing to compare yet."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:  # both all-success or all-failure: the same proportion
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, normal_two_sided_p(z)


def vote_weights(votes):
    """(i, j, w_ij, w_ji) arrays: what each vote adds to W[i, j] and W[j, i]. A tie or "both bad"
    counts half a win each way (as Chatbot Arena counts ties), so it pulls the two strengths together."""
    votes = list(votes)
    i = np.array([v[0] for v in votes], dtype=int)
    j = np.array([v[1] for v in votes], dtype=int)
    choice = np.array([v[2] for v in votes], dtype=object)
    w_ij = np.where(choice == "a", 1.0, np.where(choice == "b", 0.0, 0.5))
    return i, j, w_ij, 1.0 - w_ij


def win_matrix(n, votes, rows=None):
    """W[i, j] = wins of system i over system j. With `rows` (R, V) of vote indices: R matrices (R, n, n)
    at once, one per bootstrap resample."""
    i, j, w_ij, w_ji = vote_weights(votes)
    single = rows is None
    rows = np.arange(len(i))[None] if single else rows
    base = np.arange(rows.shape[0])[:, None] * n * n  # each resample's block in one flat array
    size = rows.shape[0] * n * n
    flat = np.bincount((base + i[rows] * n + j[rows]).ravel(), w_ij[rows].ravel(), size)
    flat += np.bincount((base + j[rows] * n + i[rows]).ravel(), w_ji[rows].ravel(), size)
    W = flat.reshape(-1, n, n)
    return W[0] if single else W


def bradley_terry(W, prior=0.1, iters=10_000, tol=1e-9):
    """Bradley-Terry strengths p, P(i beats j) = p_i / (p_i + p_j), by Hunter's (2004) MM iteration
        p_i <- W_i / sum_j N_ij / (p_i + p_j),   W_i = sum_j W_ij,  N_ij = W_ij + W_ji.
    `prior` adds that many virtual wins each way between every pair, so a system that never won (or
    never lost) keeps a finite strength and the comparison graph is connected. Geometric mean 1.
    W may be a stack (R, n, n): all R fits run together (the bootstrap)."""
    W = np.asarray(W, dtype=float)
    n = W.shape[-1]
    W = W + prior * (1 - np.eye(n))
    N = W + np.swapaxes(W, -1, -2)
    p = np.ones(W.shape[:-1])
    for _ in range(iters):
        new = W.sum(-1) / (N / (p[..., :, None] + p[..., None, :])).sum(-1)
        new /= np.exp(np.log(new).mean(-1, keepdims=True))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    return p


def elo(p):
    """Strengths on the Elo scale Chatbot Arena uses: 1000 + 400·log10(p), geometric mean at 1000."""
    return 1000 + 400 * np.log10(p)


def bt_scores(n, votes, rounds=200, seed=0, prior=0.1):
    """(scores, low, high): Elo-scale Bradley-Terry scores and percentile-bootstrap 95% intervals
    (resample the votes with replacement `rounds` times, refit, take the 2.5% and 97.5% points)."""
    votes = list(votes)
    scores = elo(bradley_terry(win_matrix(n, votes), prior))
    if not votes:
        return scores, scores.copy(), scores.copy()
    rows = np.random.default_rng(seed).integers(0, len(votes), (rounds, len(votes)))
    boot = elo(bradley_terry(win_matrix(n, votes, rows), prior))
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return scores, low, high


def votes_to_separate(wins, losses, z=Z95, z_power=Z80_POWER):
    """Roughly how many more decisive head-to-head votes until the leader's share differs from ½ at
    95% with 80% power, if the share seen so far holds. The one-sample proportion sample size
        n* = ((z·½ + z_power·sqrt(p(1-p))) / (p - ½))²,  p = wins / (wins + losses).
    0 when the current votes already separate them (|z| >= 1.96); None when p = ½ (no difference seen yet)."""
    n = wins + losses
    if n == 0 or wins == losses:
        return None
    p = wins / n
    if abs(p - 0.5) / math.sqrt(0.25 / n) >= z:
        return 0
    need = ((z * 0.5 + z_power * math.sqrt(p * (1 - p))) / (p - 0.5)) ** 2
    return max(0, math.ceil(need) - n)
