"""The scripts that rebuild the shipped small models run end to end on tiny data and write loadable models."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_nsmc

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run(script, *argv, cwd):
    r = subprocess.run([sys.executable, str(REPO / "scripts" / script), *argv], capture_output=True, text=True,
                       env=ENV, cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_fudge_discriminator_script_writes_a_discriminator_for_the_bundled_tokenizer(tmp_path, bundled):
    from kogen.decoding.discriminator import FutureDiscriminator, tokenizer_fingerprint
    data = write_nsmc(tmp_path / "nsmc", n_train=300, n_test=20, malformed=False)
    out = tmp_path / "fudge"
    run("train_fudge_discriminator.py", "--data-dir", data, "--out", str(out), "--epochs", "1", "--val", "40",
        "--state", str(tmp_path / "state.pt"), cwd=tmp_path)
    disc = FutureDiscriminator.from_pretrained(out)
    assert disc.config["tokenizer"]["fingerprint"] == tokenizer_fingerprint(bundled[1])
    assert {"README.md", "metrics.json", "config.json", "model.safetensors"} <= set(os.listdir(out))


def write_beep(path, n=120):
    """A tiny file in BEEP!'s format: polite comments are none, rude ones offensive or hate."""
    rows = ["comments\tcontain_gender_bias\tbias\thate"]
    clean = ["배우 연기 정말 좋았어요", "다음 작품도 기대됩니다", "노래 너무 좋다", "응원합니다 힘내세요"]
    rude = ["진짜 꼴보기 싫다 꺼져", "이런 쓰레기는 퇴출해라", "얼굴도 못생긴게 나대네", "머리 나쁜 인간들"]
    for i in range(n):
        text, hate = (clean[i % 4], "none") if i % 3 == 0 else (rude[i % 4], ["offensive", "hate"][i % 2])
        bias = ["none", "gender", "others"][i % 3]
        rows.append(f"{text} {i}\t{bias == 'gender'}\t{bias}\t{hate}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_toxicity_discriminator_script_trains_on_beep_with_the_classifiers_split(tmp_path, bundled):
    from kogen.decoding.discriminator import FutureDiscriminator
    out = tmp_path / "tox"
    run("train_fudge_discriminator.py", "--task", "toxicity", "--data", str(write_beep(tmp_path / "beep.tsv")),
        "--out", str(out), "--epochs", "1", "--n-embd", "256", "--lm-embeddings",
        "--state", str(tmp_path / "state.pt"), cwd=tmp_path)
    disc = FutureDiscriminator.from_pretrained(out)
    assert disc.labels == ["유해", "무해"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "BEEP!" in card and "CC BY-SA 4.0" in card and "--lm-embeddings" in card
    assert "n_test" in (out / "metrics.json").read_text(encoding="utf-8")


def test_safety_classifier_script_writes_a_loadable_classifier(tmp_path):
    from kogen.safety.classifier import load_classifier, predict
    write_beep(tmp_path / "beep.tsv")
    out = tmp_path / "safety"
    run("train_safety_classifier.py", "--data", str(tmp_path / "beep.tsv"), "--out", str(out), "--epochs", "1",
        cwd=tmp_path)
    clf = load_classifier(out)
    assert len(predict(clf, ["배우 연기 정말 좋았어요"])) == 1
    assert "CC BY-SA 4.0" in (out / "README.md").read_text(encoding="utf-8")
