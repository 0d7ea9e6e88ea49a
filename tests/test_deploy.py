"""Loading a fine-tuned checkpoint for inference, safely."""
import pickle

import pytest
import torch

from kogen import GenerationDeployArguments
from kogen.deploy import CheckpointError, load_checkpoint_state_dict, load_for_inference
from kogen.models import BUNDLED_MODEL_DIR, load_causal_lm


def write_lightning_ckpt(path, scale=1.0):
    """A checkpoint shaped like GenerationTask's: weights under state_dict with a "model." prefix."""
    model = load_causal_lm(BUNDLED_MODEL_DIR, "cpu")
    state = {f"model.{k}": v * scale for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 10}, path)
    return state


def test_checkpoint_weights_are_loaded_into_the_base_model(tmp_path):
    path = tmp_path / "epoch=0-val_loss=2.00.ckpt"
    state = write_lightning_ckpt(path, scale=0.5)
    args = GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_dir=str(tmp_path))
    model, tok, device = load_for_inference(args, "cpu")
    assert device.type == "cpu" and not model.training
    wte = model.transformer.wte.weight
    assert torch.equal(wte, state["model.transformer.wte.weight"])


def test_missing_dir_and_empty_dir_say_to_train_first(tmp_path):
    with pytest.raises(CheckpointError, match="4단계"):
        GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_dir=str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="val_loss"):
        GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_dir=str(tmp_path))


def test_corrupt_checkpoint_is_a_clear_error_and_is_left_alone(tmp_path):
    path = tmp_path / "epoch=0-val_loss=1.00.ckpt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="손상"):
        load_checkpoint_state_dict(str(path))
    assert path.read_bytes() == b"not a checkpoint at all"


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint_state_dict(str(path))
    assert "pwned" not in capsys.readouterr().out


def test_checkpoint_from_another_model_names_the_mismatch(tmp_path):
    path = tmp_path / "epoch=0-val_loss=1.00.ckpt"
    torch.save({"state_dict": {"model.transformer.wte.weight": torch.zeros(3, 3)}}, path)
    args = GenerationDeployArguments(pretrained_model_name="bundled", downstream_model_checkpoint_fpath=str(path))
    with pytest.raises(CheckpointError, match="맞지 않습니다"):
        load_for_inference(args, "cpu")
