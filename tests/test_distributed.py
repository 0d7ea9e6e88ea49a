"""`kogen train` past one device: real DDP with 2 CPU processes (gloo) on the bundled model, against one
process with the same global batch; resume under DDP; bad --devices / --strategy stop before anything runs."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_thread, write_nsmc
from kogen.models import BUNDLED_MODEL_DIR
from kogen.training import GenerationTrainArguments, fine_tune

# global batch 8: one process x 8, or 2 processes x 4; 64 reviews = 8 steps an epoch
TRAIN = dict(max_seq_length=16, learning_rate=1e-3, epochs=1, seed=0, fp16=False, log_every_n_steps=1)


def kogen_train(*argv):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "kogen", "train", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def ddp_argv(model, data, out, epochs=1):
    return ["--model", model, "--data-dir", data, "--output-dir", str(out), "--batch-size", "4",
            "--max-seq-length", "16", "--learning-rate", "1e-3", "--epochs", str(epochs), "--seed", "0", "--no-fp16",
            "--log-every-n-steps", "1", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


def logged(out_dir, version=0):
    """{step: train_loss} and the val_loss rows of a run's metrics.csv."""
    with open(os.path.join(out_dir, "logs", f"version_{version}", "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    return ({int(r["step"]): float(r["train_loss_step"]) for r in rows if r["train_loss_step"]},
            [float(r["val_loss"]) for r in rows if r["val_loss"]])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same fine-tuning twice: one process with batch 8 (in this process) and `kogen train` with
    2 DDP processes of batch 4. Dropout is off in this copy of the bundled model, so both runs compute
    the same function and only the split of the batch over processes differs."""
    root = tmp_path_factory.mktemp("ddp")
    data = write_nsmc(root / "nsmc", n_train=64, n_test=16, malformed=False)
    model = root / "no_dropout"
    shutil.copytree(BUNDLED_MODEL_DIR, model)
    config = json.loads((model / "config.json").read_text())
    config.update(attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    (model / "config.json").write_text(json.dumps(config))
    with one_thread():
        fine_tune(GenerationTrainArguments(pretrained_model_name=str(model), downstream_corpus_root_dir=data,
                                           downstream_model_dir=str(root / "single"), batch_size=8, **TRAIN))
    ddp = kogen_train(*ddp_argv(str(model), data, root / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    return dict(root=root, model=str(model), data=data, single=root / "single", ddp=root / "ddp", result=ddp)


def test_two_ddp_processes_follow_the_single_process_loss_curve(runs):
    single_steps, single_val = logged(runs["single"])
    ddp_steps, ddp_val = logged(runs["ddp"])
    assert sorted(ddp_steps) == list(range(8)), "8 global steps: each process took half of every batch of 8"
    for step, loss in single_steps.items():
        assert ddp_steps[step] == pytest.approx(loss, rel=1e-5), f"step {step}: {ddp_steps[step]} vs {loss}"
    assert ddp_val == pytest.approx(single_val, rel=1e-5)
    assert single_steps[7] < single_steps[0] - 1, "the curve being compared must actually go down"


def test_ddp_writes_each_file_once_and_exports_what_one_process_exports(runs):
    single, ddp = runs["single"], runs["ddp"]
    assert sorted(os.listdir(ddp)) == sorted(os.listdir(single)), "same checkpoint names, no -v1 duplicates"
    assert os.listdir(ddp / "logs") == ["version_0"], "one logger (rank 0), not one per process"
    assert sorted(os.listdir(ddp / "hf_model")) == sorted(os.listdir(single / "hf_model"))
    a, b = load_file(single / "hf_model" / "model.safetensors"), load_file(ddp / "hf_model" / "model.safetensors")
    assert a.keys() == b.keys()
    # the gradients agree to float rounding; Adam's m/sqrt(v) lets that grow to ~lr in a few weights
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 2e-3, f"exported weights differ by up to {worst}"
    assert runs["result"].stdout.count("가장 좋은 체크포인트") == 1, "only rank 0 reports"


def test_ddp_run_resumes_from_last_checkpoint(runs):
    out = runs["ddp"]
    r = kogen_train(*ddp_argv(runs["model"], runs["data"], out, epochs=2))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("이어서 학습합니다") == 1, r.stderr[-3000:]
    last = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 16 and last["epoch"] == 2, "resumed at step 8 and trained epoch 1 only"
    steps, val = logged(out, version=1)
    assert sorted(steps) == list(range(8, 16)), sorted(steps)
    assert val[-1] < logged(out)[1][-1], "the second epoch lowered val_loss further"
    assert len([n for n in os.listdir(out) if n.startswith("epoch=")]) == 1, os.listdir(out)


@pytest.mark.parametrize("kw, words", [
    (dict(strategy="deepspeed_stage_9"), "strategy 'deepspeed_stage_9'는 없습니다"),
    (dict(accelerator="tpu"), "auto, cpu 또는 gpu"),
    (dict(devices=0), "1 이상"),
    (dict(accelerator="cpu", devices=(os.cpu_count() or 1) + 1), "CPU 코어는"),
    (dict(accelerator="cpu", strategy="fsdp"), "fsdp는 GPU에서만"),
])
def test_bad_device_arguments_say_what_to_do(kw, words):
    with pytest.raises(ValueError, match=words):
        GenerationTrainArguments(**kw)


def test_several_machines_without_a_launcher_are_refused_not_awaited(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        GenerationTrainArguments(num_nodes=2, accelerator="cpu")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert GenerationTrainArguments(num_nodes=2, accelerator="cpu").num_nodes == 2


def test_more_gpus_than_the_machine_has_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="GPU는 1개입니다"):
        GenerationTrainArguments(devices=2, strategy="ddp")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="--accelerator cpu"):
        GenerationTrainArguments(accelerator="gpu")


def test_bad_devices_on_the_command_line_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    r = kogen_train("--quick", "--output-dir", str(out), "--accelerator", "cpu", "--devices", "4096")
    assert r.returncode == 2 and "--devices 4096" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists(), "nothing is written before the arguments are checked"
