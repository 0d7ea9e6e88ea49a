"""NSMC reading, ratsnlp-style corpus and dataset, the padding-aware collator."""
import json
import os
from types import SimpleNamespace

import pytest
import torch

from kogen.data import (DataError, GenerationDataset, NsmcCorpus, TextLinesCorpus, data_collator,
                        ensure_nsmc, read_nsmc)
from kogen.models import BUNDLED_MODEL_DIR, load_tokenizer


def args_for(root, name="nsmc", max_seq_length=16):
    return SimpleNamespace(downstream_corpus_root_dir=str(root), downstream_corpus_name=name,
                           max_seq_length=max_seq_length)


def test_nsmc_rows_become_labelled_texts_and_bad_rows_are_counted(nsmc_dir, capsys):
    texts, skipped = read_nsmc(os.path.join(nsmc_dir, "ratings_train.txt"))
    assert skipped == 3 and len(texts) == 64
    assert texts[0].startswith("긍정 ") and texts[1].startswith("부정 ")
    assert "3줄" in capsys.readouterr().err


def test_nsmc_corpus_matches_ratsnlp_interface(nsmc_dir):
    examples = NsmcCorpus().get_examples(nsmc_dir, "test")
    assert len(examples) == 16 and examples[0].text == "긍정 정말 재밌어요 최고의 영화"


@pytest.mark.parametrize("content, words", [
    ("", "머리글"),
    ("id\tdocument\tlabel\n1\t\t1\n", "한 줄도"),
    ("just some text\n", "NSMC 형식"),
])
def test_bad_nsmc_files_get_clear_messages_with_path(tmp_path, content, words):
    path = tmp_path / "ratings_train.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_nsmc(str(path))
    assert str(path) in str(e.value) and words in str(e.value)


def test_missing_user_folder_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KOGEN_NSMC_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="ratings_train.txt"):
        ensure_nsmc(str(tmp_path / "nope"))


def test_generation_dataset_appends_eos_and_truncates(nsmc_dir):
    tok = load_tokenizer(BUNDLED_MODEL_DIR)
    ds = GenerationDataset(args_for(nsmc_dir, max_seq_length=6), tok, NsmcCorpus(), mode="train")
    assert len(ds) == 64
    lengths = [len(ds[i]["input_ids"]) for i in range(len(ds))]
    assert max(lengths) == 6 and all(ds[i]["input_ids"][-1] == tok.eos_token_id for i in range(len(ds)))
    assert tok.decode(ds[0]["input_ids"][:2]).startswith("긍정")


def test_text_lines_corpus_reads_one_example_per_line(tmp_path):
    (tmp_path / "train.txt").write_text("첫 문장\n\n둘째 문장\n", encoding="utf-8")
    assert [e.text for e in TextLinesCorpus().get_examples(tmp_path, "train")] == ["첫 문장", "둘째 문장"]
    with pytest.raises(DataError, match="test.txt"):
        TextLinesCorpus().get_examples(tmp_path, "test")


def test_collator_pads_dynamically_and_masks_padding_out_of_labels():
    batch = data_collator([{"input_ids": [10, 11, 12]}, {"input_ids": [20]}], pad_token_id=3)
    assert batch["input_ids"].tolist() == [[10, 11, 12], [20, 3, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[10, 11, 12], [20, -100, -100]]


def test_padding_does_not_change_the_loss(bundled):
    """The same example's loss is identical alone and padded next to a longer one."""
    model, tok = bundled
    a, b = tok("긍정 재밌어요")["input_ids"], tok("부정 이 영화는 정말 지루하고 길었다")["input_ids"]
    alone = model(**data_collator([{"input_ids": a}], tok.pad_token_id)).loss
    padded = data_collator([{"input_ids": a}, {"input_ids": b}], tok.pad_token_id)
    logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits[:1]
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], padded["labels"][0, 1:], ignore_index=-100)
    assert torch.allclose(alone, loss, atol=1e-5), (alone, loss)


def test_dataloaders_read_a_plain_text_corpus(tmp_path):
    from kogen.training import GenerationTrainArguments, make_dataloaders
    for mode in ("train", "test"):
        (tmp_path / f"{mode}.txt").write_text("\n".join(["오늘 본 영화 좋았다", "내일도 볼 거야"] * 4), encoding="utf-8")
    args = GenerationTrainArguments(pretrained_model_name="bundled", downstream_corpus_name="lines",
                                    downstream_corpus_root_dir=str(tmp_path), batch_size=4)
    train, val = make_dataloaders(args, load_tokenizer(BUNDLED_MODEL_DIR))
    batch = next(iter(train))
    assert len(train.dataset) == 8 and batch["input_ids"].shape[0] == 4
    assert (batch["labels"] == -100).sum() == (batch["attention_mask"] == 0).sum()


@pytest.fixture
def nsmc_server(nsmc_dir, monkeypatch):
    """The fixture files served over HTTP on loopback, and NSMC_FILES pointed at them."""
    import functools
    import http.server
    import threading
    from kogen import data
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=nsmc_dir)
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(data, "NSMC_FILES", {m: (n, f"{base}/{n}", c) for m, (n, _, c) in data.NSMC_FILES.items()})
    yield base
    server.shutdown()


def test_download_once_into_cache_with_checksums(nsmc_server, tmp_path, monkeypatch):
    monkeypatch.delenv("KOGEN_NSMC_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = ensure_nsmc()
    assert root == str(tmp_path / "cache" / "kogen" / "nsmc")
    sums = json.loads((tmp_path / "cache/kogen/nsmc/SHA256SUMS.json").read_text())
    assert set(sums) == {"ratings_train.txt", "ratings_test.txt"}
    assert len(NsmcCorpus().get_examples(root, "train")) == 64
    # a corrupted cache file is detected, removed, and fetched again on the next call
    with open(os.path.join(root, "ratings_test.txt"), "a") as f:
        f.write("999\t덧붙은 줄\t1\n")
    with pytest.raises(DataError, match="체크섬"):
        ensure_nsmc()
    assert ensure_nsmc() == root and len(NsmcCorpus().get_examples(root, "test")) == 16


def test_failed_download_leaves_no_partial_file(nsmc_server, tmp_path, monkeypatch):
    from kogen import data
    monkeypatch.setattr(data, "NSMC_FILES", {"train": ("ratings_train.txt", nsmc_server + "/missing.txt", 1)})
    monkeypatch.delenv("KOGEN_NSMC_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="KOGEN_NSMC_DIR"):
        ensure_nsmc()
    assert os.listdir(tmp_path / "cache/kogen/nsmc") == []
