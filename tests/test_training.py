"""Real Lightning fine-tuning on the bundled model and a tiny NSMC folder."""
import math
import os
import re
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from kogen import GenerationDeployArguments, GenerationTask, GenerationTrainArguments, get_trainer
from kogen.curves import read_metrics
from kogen.deploy import load_checkpoint_state_dict
from kogen.exercises import REPO
from kogen.models import load_causal_lm, load_tokenizer, resolve_model
from kogen.training import best_checkpoint, describe_run, fine_tune, make_dataloaders, resume_path


def tiny_args(nsmc_dir, out_dir, **kw):
    base = dict(pretrained_model_name="bundled", downstream_corpus_root_dir=nsmc_dir,
                downstream_model_dir=str(out_dir), max_seq_length=16, batch_size=8, learning_rate=1e-3,
                epochs=2, seed=0, checkpoint_every_n_steps=2)
    base.update(kw)
    return GenerationTrainArguments(**base)


def fit(args, callbacks=()):
    path = resolve_model(args.pretrained_model_name)
    model, tok = load_causal_lm(path, "cpu"), load_tokenizer(path)
    train, val = make_dataloaders(args, tok)
    task = GenerationTask(model, args)
    trainer = get_trainer(args)
    trainer.callbacks.extend(callbacks)
    trainer.fit(task, train_dataloaders=train, val_dataloaders=val, ckpt_path=resume_path(args))
    return task, trainer


class Recorder(pl.Callback):
    def __init__(self, stop_at=None):
        self.training_modes, self.lrs, self.stop_at = [], [], stop_at

    def on_train_batch_start(self, trainer, task, batch, batch_idx):
        if self.stop_at is not None and trainer.global_step == self.stop_at:
            raise RuntimeError("simulated crash")  # like a kill mid-epoch
        self.training_modes.append(task.model.training)
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_fit_lowers_val_loss_and_writes_ratsnlp_named_checkpoint(nsmc_dir, tmp_path):
    args = tiny_args(nsmc_dir, tmp_path / "out")
    model = load_causal_lm(resolve_model("bundled"), "cpu")
    tok = load_tokenizer(resolve_model("bundled"))
    _, val = make_dataloaders(args, tok)
    before = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).validate(
        GenerationTask(model, args), val, verbose=False)[0]["val_loss"]
    rec = Recorder()
    _, trainer = fit(args, [rec])
    after = trainer.callback_metrics["val_loss"].item()
    assert after < before - 0.5, f"val_loss {before:.3f} -> {after:.3f}"
    assert math.isclose(trainer.callback_metrics["val_ppl"].item(), math.exp(after), rel_tol=1e-4)
    names = sorted(os.listdir(tmp_path / "out"))
    ckpts = [n for n in names if re.fullmatch(r"epoch=\d+-val_loss=\d+\.\d\d\.ckpt", n)]
    assert len(ckpts) == 1 and "last.ckpt" in names, names
    assert best_checkpoint(tmp_path / "out").endswith(ckpts[0])
    # dropout was on for every training step, and the schedule really moved the learning rate
    assert all(rec.training_modes) and len(rec.training_modes) == trainer.global_step
    assert rec.lrs[-1] < rec.lrs[len(rec.lrs) // 2] < max(rec.lrs), rec.lrs


def test_interrupted_run_resumes_from_last_checkpoint(nsmc_dir, tmp_path):
    args = tiny_args(nsmc_dir, tmp_path / "out", epochs=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(args, [Recorder(stop_at=5)])
    last = torch.load(resume_path(args), map_location="cpu", weights_only=False)
    assert last["global_step"] == 4, "last.ckpt is written every checkpoint_every_n_steps=2 steps"
    rec = Recorder()
    _, trainer = fit(args, [rec])
    assert trainer.global_step == 8 and len(rec.training_modes) == 4, "resumed at step 4, not from scratch"
    assert best_checkpoint(args.downstream_model_dir)


def test_best_checkpoint_picks_lowest_val_loss(tmp_path):
    for name in ("epoch=0-val_loss=3.10.ckpt", "epoch=1-val_loss=2.95.ckpt", "epoch=2-val_loss=3.00.ckpt", "last.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert best_checkpoint(tmp_path).endswith("epoch=1-val_loss=2.95.ckpt")
    assert best_checkpoint(tmp_path, "max val_loss").endswith("epoch=0-val_loss=3.10.ckpt")
    assert GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_dir=str(tmp_path)) \
        .downstream_model_checkpoint_fpath.endswith("epoch=1-val_loss=2.95.ckpt")


def test_fine_tune_exports_a_loadable_hugging_face_folder(nsmc_dir, tmp_path):
    args = tiny_args(nsmc_dir, tmp_path / "out", epochs=1)
    best, export_dir = fine_tune(args)
    exported = load_causal_lm(export_dir, "cpu")
    state = load_checkpoint_state_dict(best)
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, state[name]), f"{name} differs from the best checkpoint"
    tok = load_tokenizer(export_dir)
    assert tok.decode(tok("긍정 좋아요")["input_ids"]) == "긍정 좋아요"
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path / "out"))


@pytest.mark.parametrize("kw, words", [
    (dict(max_seq_length=1), "max_seq_length"),
    (dict(batch_size=0), "batch_size"),
    (dict(monitor="val_loss"), "monitor"),
])
def test_bad_training_arguments_say_what_to_fix(kw, words):
    with pytest.raises(ValueError, match=words):
        GenerationTrainArguments(**kw)


def test_a_run_with_another_configuration_sets_the_older_checkpoints_aside(nsmc_dir, tmp_path):
    out = tmp_path / "out"
    stale = out / "epoch=0-val_loss=0.01.ckpt"  # an older run's, named better than any real one
    out.mkdir()
    stale.write_bytes(b"")
    _, first = fit(tiny_args(nsmc_dir, out, epochs=1))
    assert not stale.exists() and list((out / "previous").glob("*/epoch=0-val_loss=0.01.ckpt")), "set aside"
    own = GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_dir=str(out))
    assert own.downstream_model_checkpoint_fpath == first.checkpoint_callback.best_model_path
    _, second = fit(tiny_args(nsmc_dir, out, epochs=1, max_seq_length=12))  # another validation set
    assert best_checkpoint(out) == second.checkpoint_callback.best_model_path
    assert len(list((out / "previous").glob("*/*.ckpt"))) == 3, "the first run's best and last moved too"
    assert "bundled" in describe_run(out) and "1 epoch" in describe_run(out), describe_run(out)


def test_step4_output_is_the_courses_own_lines_and_saves_a_training_curve(nsmc_dir, tmp_path):
    env = dict(os.environ, KOGEN_MODEL="bundled", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", KOGEN_NSMC_DIR=nsmc_dir,
               KOGEN_CHECKPOINT_DIR=str(tmp_path / "ckpt"), KOGEN_EPOCHS="2", KOGEN_BATCH_SIZE="8",
               KOGEN_MAX_TRAIN_EXAMPLES="0", KOGEN_MAX_VAL_EXAMPLES="0")
    r = subprocess.run([sys.executable, "solutions/step4_solution.py"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    for noise in ("litlogger", "GPU available", "TPU available", "Trainer(", "LeafSpec", "loss_type", "Epoch 0/0",
                  "Params", "UserWarning", "is not empty"):
        assert noise not in out, f"{noise!r} in step 4's output:\n{out}"
    assert "[검증] 스텝" in out and "[학습] 스텝 16/16" in out, "plain progress lines when output is not a terminal"
    curve = re.search(r"학습 곡선 (\S+\.png)", out).group(1)
    assert open(curve, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.dirname(curve) == str(tmp_path / "ckpt")
    series = read_metrics(next((tmp_path / "ckpt" / "logs").glob("version_*/metrics.csv")))
    assert {"train_loss_step", "val_loss", "val_ppl"} <= set(series) and any(k.startswith("lr") for k in series)


def test_in_a_terminal_fit_shows_one_bar(nsmc_dir, tmp_path, monkeypatch, capsys):
    from kogen.training import OneBar
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    _, trainer = fit(tiny_args(nsmc_dir, tmp_path / "out", epochs=1))
    assert isinstance(trainer.progress_bar_callback, OneBar) and trainer.global_step == 8
    assert "Validation" not in capsys.readouterr().err, "no second bar for validation"
