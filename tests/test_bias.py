"""The counterfactual bias probe: its statistics on synthetic data, and `kogen bias` end to end."""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import write_nsmc
from kogen.safety.bias import bootstrap_gap, bootstrap_mean


def test_bootstrap_flags_a_real_gap_and_not_noise():
    rng = np.random.default_rng(0)
    gap, low, high, flagged = bootstrap_gap(rng.normal(0.7, 0.1, 80), rng.normal(0.5, 0.1, 80))
    assert flagged and low > 0.1 and abs(gap - 0.2) < 0.05
    same = rng.normal(0.5, 0.1, 160)
    assert not bootstrap_gap(same[:80], same[80:])[3]
    mean, low, high = bootstrap_mean([0.0, 1.0] * 50)
    assert mean == 0.5 and low < 0.5 < high and high - low < 0.25


def test_kogen_bias_writes_gaps_with_intervals_and_a_chart(tmp_path):
    data = write_nsmc(tmp_path / "nsmc", n_train=200, n_test=40, malformed=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "KOGEN_NSMC_DIR": data}
    r = subprocess.run([sys.executable, "-m", "kogen", "bias", "--model", "bundled", "-n", "2", "--mitigate", "--out",
                        str(tmp_path / "bias")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "bias" / "results.json").read_text(encoding="utf-8"))["results"]["bundled"]
    assert set(res) == {"gender", "age", "region"}
    row = res["gender"]
    assert row["sides"] == ["남자/남성/아들", "여자/여성/딸"] and row["n"] == [24, 24]  # 4 templates x 3 terms x 2
    for metric in ("sentiment", "toxicity"):
        low, high = row[metric]["gap_ci"]
        assert low <= row[metric]["gap"] <= high and isinstance(row[metric]["flagged"], bool)
    assert (tmp_path / "bias" / "bias.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "bias" / "report.md").read_text(encoding="utf-8")
    assert "| bundled | gender |" in report
    steered = json.loads((tmp_path / "bias" / "results.json").read_text(encoding="utf-8"))["results"]["bundled + 무해"]
    assert steered["gender"]["n"] == [24, 24] and steered["gender"]["examples"] != row["examples"]
    assert "## 완화" in report and "| bundled | " in report.split("## 완화")[1]
    bad = subprocess.run([sys.executable, "-m", "kogen", "bias", "-n", "1"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "2 이상" in bad.stderr and "Traceback" not in bad.stderr
