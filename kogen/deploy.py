"""Load a fine-tuned checkpoint for inference, the way ratsnlp's deploy step does.

    args = GenerationDeployArguments(pretrained_model_name="skt/kogpt2-base-v2",
                                     downstream_model_dir="checkpoints/nsmc-generation")
    model, tokenizer, device = load_for_inference(args)

Checkpoints are read with torch.load(weights_only=True): a .ckpt is a pickle, and a pickle from
an untrusted source can run code when loaded; weights_only refuses anything but tensors and
plain containers.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .models import load_causal_lm, load_tokenizer, pick_device, requested_model_name, resolve_model


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or does not fit the model."""


def best_checkpoint(model_dir, monitor="min val_loss"):
    """The epoch=N-val_loss=X.XX.ckpt with the lowest (or highest) val_loss, as ratsnlp picks it."""
    mode, _, metric = monitor.partition(" ")
    found = []
    for p in Path(model_dir).glob("*.ckpt"):
        m = re.search(rf"{metric}=([0-9.]+?)(?:-v\d+)?\.ckpt$", p.name)
        if m:
            found.append((float(m.group(1)), p.stat().st_mtime, str(p)))
    if not found:
        return None
    # best value first; among equal values the newest file
    key = (lambda t: (t[0], -t[1])) if mode == "min" else (lambda t: (-t[0], -t[1]))
    return min(found, key=key)[2]


@dataclass
class GenerationDeployArguments:
    """ratsnlp's fields: a checkpoint file, or a folder whose lowest-val_loss checkpoint is used."""
    pretrained_model_name: str = None
    downstream_model_dir: str = None
    downstream_model_checkpoint_fpath: str = None
    max_seq_length: int = 128

    def __post_init__(self):
        self.pretrained_model_name = requested_model_name(self.pretrained_model_name)
        if self.downstream_model_checkpoint_fpath is None and self.downstream_model_dir is not None:
            if not os.path.isdir(self.downstream_model_dir):
                raise CheckpointError(f"체크포인트 폴더가 없습니다: {self.downstream_model_dir}. "
                                      f"4단계 학습을 먼저 실행하세요(python solutions/step4_solution.py 또는 kogen train).")
            self.downstream_model_checkpoint_fpath = best_checkpoint(self.downstream_model_dir)
            if self.downstream_model_checkpoint_fpath is None:
                raise CheckpointError(f"{self.downstream_model_dir}에 epoch=N-val_loss=X.XX.ckpt 형식의 체크포인트가 "
                                      f"없습니다. 학습을 끝까지(검증 포함) 실행했는지 확인하세요.")


def load_checkpoint_state_dict(path):
    """The model weights of a Lightning checkpoint, with the task's "model." prefix removed."""
    if not os.path.isfile(path):
        raise CheckpointError(f"체크포인트 파일이 없습니다: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"체크포인트를 읽을 수 없습니다: {path} ({type(e).__name__}: {str(e)[:200]}). "
                              f"파일이 손상되었거나 Lightning 체크포인트가 아닙니다. 다시 학습하거나 다른 파일을 지정하세요.") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}에 모델 가중치(state_dict)가 없습니다.")
    return {k.removeprefix("model."): v for k, v in state.items()}


def load_for_inference(args, device=None):
    """(model, tokenizer, device): the base model with the checkpoint's weights, in eval mode."""
    path = resolve_model(args.pretrained_model_name)
    device = pick_device(device)
    model = load_causal_lm(path, "cpu")
    tokenizer = load_tokenizer(path)
    if args.downstream_model_checkpoint_fpath:
        state = load_checkpoint_state_dict(args.downstream_model_checkpoint_fpath)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{args.downstream_model_checkpoint_fpath}의 가중치가 모델 "
                                  f"'{args.pretrained_model_name}'과 맞지 않습니다. 학습할 때 쓴 모델을 지정하세요. "
                                  f"({str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), tokenizer, device
