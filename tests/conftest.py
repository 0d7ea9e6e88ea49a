"""Shared fixtures: the bundled model (loaded once), a tiny NSMC folder with malformed rows, a
free loopback port. Nothing here touches the network."""
import contextlib
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from kogen.check import free_port as find_free_port  # noqa: E402
from kogen.check import write_tiny_nsmc  # noqa: E402



def write_nsmc(folder, n_train=64, n_test=16, malformed=True):
    """kogen check's tiny NSMC folder; with `malformed`, 3 bad rows are added to the train file."""
    write_tiny_nsmc(folder, n_train, n_test)
    if malformed:
        with open(os.path.join(folder, "ratings_train.txt"), "a", encoding="utf-8") as f:
            f.write("2001\t\t1\n2002\t리뷰만 있고 레이블 없음\n2003\t레이블이 이상함\t7\n")
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


@contextlib.contextmanager
def one_thread():
    """torch on one thread: 2 cores shared with other jobs make a second OpenMP thread spin, and the tiny
    models here run ~100x slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(bundled):
    """The bundled model with torch on one thread for the module (see one_thread)."""
    with one_thread():
        yield bundled


@pytest.fixture
def free_port():
    return find_free_port()
