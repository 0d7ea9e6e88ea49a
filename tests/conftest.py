"""Shared fixtures: the bundled model (loaded once), a tiny NSMC folder with malformed rows, a
free loopback port. Nothing here touches the network."""
import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POSITIVE = ["정말 재밌어요 최고의 영화", "배우들 연기가 너무 좋았다", "감동적이고 아름다운 이야기", "또 보고 싶은 영화입니다",
            "음악도 좋고 스토리도 탄탄함", "올해 본 영화 중 최고", "웃기고 따뜻한 영화네요", "강력 추천합니다 꼭 보세요"]
NEGATIVE = ["시간 아까운 최악의 영화", "지루하고 재미없다", "스토리가 엉망이네요", "돈 주고 보기 아깝다",
            "연기가 너무 어색함", "졸다가 나왔습니다", "기대했는데 실망이에요", "다시는 안 볼 영화"]


def write_nsmc(folder, n_train=64, n_test=16, malformed=True):
    """A small NSMC-format folder; with `malformed`, adds 3 bad rows to the train file."""
    os.makedirs(folder, exist_ok=True)
    for name, n in (("ratings_train.txt", n_train), ("ratings_test.txt", n_test)):
        rows = ["id\tdocument\tlabel"]
        for i in range(n):
            pool, label = (POSITIVE, 1) if i % 2 == 0 else (NEGATIVE, 0)
            rows.append(f"{1000 + i}\t{pool[(i // 2) % len(pool)]}\t{label}")
        if malformed and name == "ratings_train.txt":
            rows += ["2001\t\t1", "2002\t리뷰만 있고 레이블 없음", "2003\t레이블이 이상함\t7"]
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
    return str(folder)


@pytest.fixture
def nsmc_dir(tmp_path):
    return write_nsmc(tmp_path / "nsmc")


@pytest.fixture(scope="session")
def bundled():
    """(model, tokenizer) of the bundled model on CPU, loaded once per test session."""
    from kogen.models import load_model
    model, tokenizer, _ = load_model("bundled", "cpu")
    return model, tokenizer


@pytest.fixture
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
