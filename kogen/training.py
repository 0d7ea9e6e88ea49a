"""ratsnlp's fine-tuning API on pytorch-lightning 2.x.

    args = GenerationTrainArguments(pretrained_model_name="skt/kogpt2-base-v2", ...)
    task = GenerationTask(model, args)
    trainer = get_trainer(args)
    trainer.fit(task, train_dataloaders=..., val_dataloaders=..., ckpt_path=resume_path(args))

Past one device, through Lightning: GenerationTrainArguments(devices=N, num_nodes=M, strategy="ddp"|"fsdp",
accelerator="gpu"|"cpu"). batch_size is per process, so the global batch is batch_size x devices x num_nodes.
The loss is summed over every process's tokens and divided by their total, and the training order is the
one DistributedSampler gives, so N processes take the same steps as one process with the global batch.
Lightning writes checkpoints from rank 0 only; fine_tune exports from rank 0 only.

Fixes against ratsnlp: the learning-rate schedule is really applied (returned under
"lr_scheduler", stepped every batch); the model is put in train mode (dropout on) for training;
padding is out of the loss (see data.data_collator); checkpoints load with weights_only=True.
"""
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import RandomSampler
from transformers import get_linear_schedule_with_warmup

from .deploy import best_checkpoint  # noqa: F401 (step 4 and 5 import it from here)
from .models import DEFAULT_MODEL


@dataclass
class GenerationTrainArguments:
    """ratsnlp's field names; the defaults run locally (no Colab or Google Drive paths)."""
    pretrained_model_name: str = field(default_factory=lambda: os.environ.get("KOGEN_MODEL", DEFAULT_MODEL))
    downstream_task_name: str = "generation"
    downstream_corpus_name: str = "nsmc"
    downstream_corpus_root_dir: str = None      # None: KOGEN_NSMC_DIR, else the download cache
    downstream_model_dir: str = "checkpoints/nsmc-generation"
    max_seq_length: int = 32
    save_top_k: int = 1
    monitor: str = "min val_loss"                # ratsnlp's "<mode> <metric>" string
    seed: int = 7
    overwrite_cache: bool = False                # kept for ratsnlp scripts; nothing is cached on disk
    force_download: bool = False
    test_mode: bool = False                      # ratsnlp: a few batches only, to smoke-test a script
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    epochs: int = 3
    batch_size: int = 32
    cpu_workers: int = 0
    fp16: bool = None                            # mixed precision; None: where it is faster (GPU, AMX CPU)
    tpu_cores: int = 0                           # ratsnlp's; Lightning 2 picks the accelerator itself
    accelerator: str = "auto"                    # auto, cpu, gpu (cuda), mps
    devices: int = 1                             # processes per machine: GPUs, or CPU processes with accelerator="cpu"
    num_nodes: int = 1                           # machines (torchrun / SLURM start one launcher per machine)
    strategy: str = "auto"                       # auto, ddp, fsdp (GPU only)
    max_train_examples: int = None               # subsample for quick runs
    max_val_examples: int = None
    val_check_interval: float = 1.0              # fraction of an epoch, or a number of batches
    checkpoint_every_n_steps: int = 100          # last.ckpt, so a killed run loses at most this much
    max_steps: int = -1
    log_every_n_steps: int = 10                  # train_loss rows in logs/version_N/metrics.csv

    def __post_init__(self):
        if self.max_seq_length < 2:
            raise ValueError("max_seq_length는 2 이상이어야 합니다.")
        if self.batch_size < 1 or self.epochs < 1 or not self.learning_rate > 0:
            raise ValueError("batch_size와 epochs는 1 이상, learning_rate는 0보다 커야 합니다.")
        mode, _, metric = self.monitor.partition(" ")
        if mode not in ("min", "max") or not metric:
            raise ValueError(f"monitor는 'min val_loss'처럼 '<min|max> <지표>'여야 합니다(받은 값: {self.monitor!r}).")
        check_devices(self)


STRATEGIES = ("auto", "ddp", "fsdp")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# what torchrun, SLURM, LSF, MPI, or a manual launch with NODE_RANK set, leave in the environment
MULTI_NODE_LAUNCHERS = ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE")


def check_devices(args):
    """Korean errors, before anything is loaded or written, for what Lightning would reject in English
    or start and then fail on (or wait on forever): an unknown strategy or accelerator, more devices than the
    machine has, several machines without a launcher."""
    if args.strategy not in STRATEGIES:
        raise ValueError(f"strategy {args.strategy!r}는 없습니다. auto(장치 1개면 그대로, 여러 개면 ddp), "
                         f"ddp(프로세스마다 모델 전체 복사본) 또는 fsdp(GPU에서 모델을 나눠 가짐) 중 하나를 쓰세요.")
    if args.accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator {args.accelerator!r}는 없습니다. auto, cpu 또는 gpu 중 하나를 쓰세요.")
    if args.devices < 1 or args.num_nodes < 1:
        raise ValueError(f"devices와 num_nodes는 1 이상이어야 합니다(받은 값: {args.devices}, {args.num_nodes}).")
    gpu = args.accelerator in ("gpu", "cuda") or (args.accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        have, kind = torch.cuda.device_count(), "GPU"
        if have == 0:
            raise ValueError("GPU(CUDA)를 찾을 수 없습니다. CPU 프로세스 여러 개로 하려면 --accelerator cpu를 쓰거나, "
                             "CUDA판 torch가 설치된 GPU 컴퓨터에서 실행하세요.")
    elif args.accelerator == "mps":
        have, kind = 1, "MPS 장치"
    else:
        have, kind = os.cpu_count() or 1, "CPU 코어"
        if args.strategy == "fsdp":
            raise ValueError("fsdp는 GPU에서만 됩니다(Lightning의 제한). CPU 프로세스 여러 개로는 --strategy ddp를 쓰세요.")
    if args.num_nodes > 1 and not any(v in os.environ for v in MULTI_NODE_LAUNCHERS):
        raise ValueError(f"--num-nodes {args.num_nodes}: 컴퓨터 여러 대는 컴퓨터마다 torchrun이나 SLURM의 srun으로 띄워야 합니다"
                         f"(그냥 실행하면 오지 않을 다른 컴퓨터를 기다립니다). 명령 예는 가이드 6.8절에 있습니다.")
    if args.devices > have:
        raise ValueError(f"--devices {args.devices}: 이 컴퓨터의 {kind}는 {have}개입니다. --devices를 {have} 이하로 "
                         f"주세요. 컴퓨터 여러 대라면 --devices는 한 대의 장치 수, --num-nodes는 컴퓨터 수입니다.")


def set_seed(seed):
    """random, numpy and torch; also PL_GLOBAL_SEED, which seeds Lightning's DistributedSampler under DDP."""
    pl.seed_everything(seed, verbose=False)


class ShuffleSampler(RandomSampler):
    """A fresh order each epoch, torch.randperm seeded by seed + epoch: what DistributedSampler gives one
    process. Under DDP, Lightning swaps any RandomSampler for DistributedSampler(seed=PL_GLOBAL_SEED), whose
    processes take every N-th index of that same order, so N processes' batches make up one process's."""

    def __init__(self, data_source, seed=0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch):  # Lightning calls it at the start of every epoch
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data_source), generator=g).tolist())


class GenerationTask(pl.LightningModule):
    """Causal-LM fine-tuning: logs train_loss, val_loss and val_ppl."""

    def __init__(self, model, args):
        super().__init__()
        if getattr(model, "loss_type", None) is None:
            model.loss_type = "ForCausalLM"  # what transformers 5 uses anyway, without warning that it guessed
        self.model = model.train()  # see on_train_epoch_start
        self.args = args
        self.val_losses = []

    def on_train_epoch_start(self):
        # from_pretrained returns the model in eval mode and Lightning 2 keeps whatever mode it
        # finds, so without this dropout would stay off for all of fine-tuning (also if a student
        # called model.eval() to sample before training)
        self.model.train()

    def summed_loss(self, batch):
        """(sum of the token losses, number of predicted tokens) of one batch."""
        n_tokens = (batch["labels"][:, 1:] != -100).sum()
        return self.model(**batch).loss * n_tokens, n_tokens

    def all_processes(self, loss_sum, n_tokens):
        """(loss sum, tokens) added up over every process (the identity on one device)."""
        return self.trainer.strategy.reduce(torch.stack([loss_sum.detach().float(), n_tokens.float()]), reduce_op="sum")

    def training_step(self, batch, batch_idx):
        loss_sum, n_tokens = self.summed_loss(batch)
        total, tokens = self.all_processes(loss_sum, n_tokens)
        # the value is already the same on every process; sync_dist=True only says so to Lightning
        self.log("train_loss", total / tokens, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        # divide by the tokens of the whole global batch, not this process's share; DDP and FSDP average
        # gradients over processes, hence x world_size: the gradient of one process with the global batch
        return loss_sum / tokens * self.trainer.world_size

    def validation_step(self, batch, batch_idx):
        self.val_losses.append([t.detach() for t in self.summed_loss(batch)])

    def on_validation_epoch_end(self):
        if not self.val_losses:
            return
        # token-weighted mean over all batches of all processes, so short and long batches count by what they hold
        total, tokens = self.all_processes(*(torch.stack(col).sum() for col in zip(*self.val_losses)))
        total = total / tokens
        self.val_losses.clear()
        self.log("val_loss", total, prog_bar=True, sync_dist=True)
        self.log("val_ppl", torch.exp(total), sync_dist=True)

    def configure_optimizers(self):
        no_decay = ("bias", "ln_", "LayerNorm", "layernorm", "norm")
        params = [
            {"params": [p for n, p in self.model.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": self.args.weight_decay},
            {"params": [p for n, p in self.model.named_parameters() if any(k in n for k in no_decay)],
             "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(params, lr=self.args.learning_rate)
        total = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(total * self.args.warmup_ratio), total)
        # "lr_scheduler" (not ratsnlp's "scheduler") is the key Lightning reads; step every batch
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def cpu_has_bf16_units():
    """AMX or AVX512-BF16: CPUs where bf16 autocast trains faster (1.4x for the bundled model here,
    benchmarks/bench_train_precision.py); elsewhere it is slower than float32."""
    return any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def pick_precision(args):
    """fp16=None: mixed precision where it pays (a CUDA GPU, or a CPU with bf16 units), else float32."""
    if torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda"):
        mixed = True if args.fp16 is None else args.fp16
        return ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if mixed else "32-true"
    mixed = cpu_has_bf16_units() if args.fp16 is None else args.fp16
    return "bf16-mixed" if mixed else "32-true"


RUN_FILE = "run.json"  # the configuration and start time of the run whose checkpoints the folder holds
# what may change between a run and its resume: how long, where and how it runs, not what it is measured on
SAME_RUN_IGNORES = ("downstream_model_dir", "checkpoint_every_n_steps", "cpu_workers", "accelerator", "fp16", "epochs",
                    "max_steps", "devices", "num_nodes", "strategy", "log_every_n_steps", "val_check_interval")


def run_config(config):
    """What makes two runs the same run (their val_loss comparable): `config` is the arguments or run.json's dict."""
    config = config if isinstance(config, dict) else asdict(config)
    return {k: v for k, v in config.items() if k not in SAME_RUN_IGNORES}


def start_run(args):
    """Make the model dir this run's: checkpoints of an earlier run with another configuration (another
    validation set, so their val_loss is not comparable) move to previous/<its start time>/, so the best
    checkpoint in the folder, which step 5 serves, is always this configuration's. The same configuration
    with a last.ckpt is a run to resume, and stays."""
    folder = Path(args.downstream_model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) != 0:
        return  # DDP's other processes: rank 0 decided before it launched them
    old = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")) if (folder / RUN_FILE).exists() else None
    ckpts = sorted(folder.glob("*.ckpt"))
    same = run_config(old["config"]) == run_config(args) if old else (folder / "last.ckpt").exists()
    if ckpts and not same:
        stamp = (old or {}).get("started") or time.strftime("%Y%m%d-%H%M%S", time.localtime(ckpts[0].stat().st_mtime))
        aside = folder / "previous" / stamp.replace(":", "")
        aside.mkdir(parents=True, exist_ok=True)
        for p in ckpts + ([folder / RUN_FILE] if old else []):
            os.replace(p, aside / p.name)
        print(f"[kogen] {folder}에 있던 다른 설정의 이전 실행 체크포인트 {len(ckpts)}개를 {aside}로 옮겼습니다 "
              f"(검증 데이터가 달라 val_loss를 비교할 수 없습니다). 이 폴더의 체크포인트는 이번 실행의 것입니다.",
              file=sys.stderr)
    if not same or not old:
        run = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": asdict(args)}
        (folder / RUN_FILE).write_text(json.dumps(run, ensure_ascii=False, indent=1), encoding="utf-8")


def describe_run(model_dir):
    """One Korean line on the run whose checkpoints `model_dir` holds (what step 5 says it serves)."""
    path = Path(model_dir, RUN_FILE)
    if not path.exists():
        return "학습 기록(run.json)이 없는 폴더입니다"
    run = json.loads(path.read_text(encoding="utf-8"))
    c = run["config"]
    n = f"{c['max_train_examples']:,}개" if c.get("max_train_examples") else "전부"
    return (f"{run['started'].replace('T', ' ')}에 시작한 실행: {c['pretrained_model_name']}, 학습 예제 {n}, "
            f"{c['epochs']} epoch, batch {c['batch_size']}, learning_rate {c['learning_rate']}")


UNACTIONABLE = [  # Lightning's and torch's notes a student cannot act on; the course prints what matters
    r".*isinstance\(treespec, LeafSpec\)", r"Checkpoint directory .* exists and is not empty",
    r"The number of training batches .* is smaller than the logging interval", r".*does not have many workers",
    r"Precision .* is not supported by the model summary", r".*TPU available.*"]


def quiet_lightning():
    """Lightning's info lines (accelerator, Trainer configuration, its logging advertisement) and warnings
    that are not the student's to fix stay out of the course's output."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in UNACTIONABLE:
        warnings.filterwarnings("ignore", message=message)


def clock(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


class PlainProgress(ProgressBar):
    """Progress as plain lines, one every `every` seconds and one per validation: what a redirected run or a
    log file should show instead of a progress bar redrawn in place."""

    def __init__(self, every=30.0):
        super().__init__()
        self.every, self.enabled, self.start, self.last = every, True, 0.0, 0.0

    def disable(self):
        self.enabled = False

    def enable(self):
        self.enabled = True

    def on_train_start(self, trainer, pl_module):
        self.start = self.last = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now, done, total = time.time(), trainer.global_step, trainer.estimated_stepping_batches
        if not self.enabled or (now - self.last < self.every and done < total):
            return
        self.last = now
        loss = trainer.callback_metrics.get("train_loss_step")
        left = (now - self.start) / max(done, 1) * (total - done)
        print(f"  [학습] 스텝 {done:,}/{total:,} ({done / total:.0%})"
              + (f"  train_loss {loss.item():.3f}" if loss is not None else "")
              + f"  경과 {clock(now - self.start)}, 남은 시간 약 {clock(left)}", flush=True)

    def on_validation_end(self, trainer, pl_module):
        if self.enabled and trainer.state.fn == "fit" and "val_loss" in trainer.callback_metrics:
            print(f"  [검증] 스텝 {trainer.global_step:,}: val_loss {trainer.callback_metrics['val_loss'].item():.3f}",
                  flush=True)


class OneBar(TQDMProgressBar):
    """In a terminal, one bar for the whole fit: validation runs without a bar of its own and its val_loss
    shows on the training bar."""

    def on_validation_start(self, trainer, pl_module):
        pass

    def on_validation_batch_start(self, *args, **kwargs):
        pass

    def on_validation_batch_end(self, *args, **kwargs):
        pass

    def on_validation_end(self, trainer, pl_module):
        if self._train_progress_bar is not None and trainer.state.fn == "fit":
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


class TrainingCurve(pl.Callback):
    """At the end of fit, draw metrics.csv as training_curve.png in the model dir (kogen.curves)."""

    def __init__(self):
        self.path = None

    def on_fit_end(self, trainer, pl_module):
        from .curves import save_training_curve
        self.path = save_training_curve(trainer)


def training_curve(trainer):
    """The PNG the TrainingCurve callback wrote for this trainer's fit, or None."""
    return next((cb.path for cb in trainer.callbacks if isinstance(cb, TrainingCurve)), None)


def get_trainer(args, return_trainer_only=True):
    """A Trainer that keeps the best checkpoints as epoch=N-val_loss=X.XX.ckpt (ratsnlp's names)
    and a last.ckpt every `checkpoint_every_n_steps` steps to resume from; the folder is this run's
    (see start_run)."""
    mode, _, metric = args.monitor.partition(" ")
    start_run(args)
    best = ModelCheckpoint(dirpath=args.downstream_model_dir, filename="{epoch}-{val_loss:.2f}", monitor=metric,
                           mode=mode, save_top_k=args.save_top_k, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=args.downstream_model_dir, filename="last", save_top_k=0, save_last=True,
                           every_n_train_steps=args.checkpoint_every_n_steps, enable_version_counter=False)
    precision = pick_precision(args)
    quiet_lightning()
    progress = OneBar() if sys.stdout.isatty() else PlainProgress()
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
        precision=precision, max_epochs=args.epochs,
        max_steps=args.max_steps, default_root_dir=args.downstream_model_dir,
        callbacks=[best, last, LearningRateMonitor("step"), progress, TrainingCurve()],
        val_check_interval=args.val_check_interval, logger=pl.loggers.CSVLogger(args.downstream_model_dir, name="logs"),
        limit_train_batches=4 if args.test_mode else 1.0, limit_val_batches=4 if args.test_mode else 1.0,
        log_every_n_steps=args.log_every_n_steps, num_sanity_val_steps=0, deterministic=False,
        enable_model_summary=False,
    )
    return trainer if return_trainer_only else (best, trainer)


def resume_path(args):
    """last.ckpt in the model dir if a previous run left one, else None (fresh start)."""
    path = os.path.join(args.downstream_model_dir, "last.ckpt")
    return path if os.path.exists(path) else None


def export_hf(model, tokenizer, out_dir):
    """Write a Hugging Face folder (safetensors) that from_pretrained, vLLM and friends can load."""
    tmp = str(out_dir) + ".tmp"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    # transformers 5 names its own class, TokenizersBackend, which transformers 4 (vLLM's, often) lacks;
    # PreTrainedTokenizerFast reads the same tokenizer.json in both
    settings_path = os.path.join(tmp, "tokenizer_config.json")
    with open(settings_path, encoding="utf-8") as f:
        settings = json.load(f)
    if settings.get("tokenizer_class") == "TokenizersBackend":
        settings["tokenizer_class"] = "PreTrainedTokenizerFast"
        with open(settings_path, "w", encoding="utf-8") as f:
            json.dump(settings, f, ensure_ascii=False, indent=2)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return str(out_dir)


def make_dataloaders(args, tokenizer, corpus=None):
    """(train, val) DataLoaders over `corpus` (NSMC by default), padded per batch."""
    from functools import partial

    from torch.utils.data import DataLoader

    from .data import GenerationDataset, NsmcCorpus, TextLinesCorpus, data_collator
    corpus = corpus or (NsmcCorpus() if args.downstream_corpus_name == "nsmc" else TextLinesCorpus())
    train = GenerationDataset(args, tokenizer, corpus, mode="train", max_examples=args.max_train_examples)
    val = GenerationDataset(args, tokenizer, corpus, mode="test", max_examples=args.max_val_examples)
    collate = partial(data_collator, pad_token_id=tokenizer.pad_token_id)
    return (DataLoader(train, batch_size=args.batch_size, sampler=ShuffleSampler(train, args.seed), collate_fn=collate,
                       num_workers=args.cpu_workers),
            DataLoader(val, batch_size=args.batch_size, shuffle=False, collate_fn=collate,
                       num_workers=args.cpu_workers))


def fine_tune(args, export_dir=None):
    """The whole of step 4: load, fit (resuming from last.ckpt), export the best checkpoint.
    Returns (best checkpoint path, exported folder); under DDP other processes than rank 0 return (None, None)."""
    from .deploy import load_checkpoint_state_dict
    from .models import load_causal_lm, load_tokenizer, resolve_model
    set_seed(args.seed)
    path = resolve_model(args.pretrained_model_name)
    model, tokenizer = load_causal_lm(path, "cpu"), load_tokenizer(path)
    train_loader, val_loader = make_dataloaders(args, tokenizer)
    task = GenerationTask(model, args)
    trainer = get_trainer(args)
    resume = resume_path(args)
    if resume and rank_zero_only.rank == 0:
        print(f"[kogen] 이전 실행의 {resume}에서 이어서 학습합니다. 처음부터 하려면 {args.downstream_model_dir} 폴더를 "
              f"지우거나 다른 --output-dir를 쓰세요.", file=sys.stderr)
    try:
        trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=resume)
    except SystemExit:  # Lightning shuts down gracefully on Ctrl-C, then calls sys.exit(1)
        raise KeyboardInterrupt from None
    if trainer.interrupted:  # never export a half-trained model as if it were done
        raise KeyboardInterrupt
    if not trainer.is_global_zero:  # one process exports, as one wrote the checkpoints
        return None, None
    best = best_checkpoint(args.downstream_model_dir, args.monitor)
    export_dir = export_dir or os.path.join(args.downstream_model_dir, "hf_model")
    if best:  # a freshly loaded model: under FSDP the trained one's parameters are shards
        model = load_causal_lm(path, "cpu")
        model.load_state_dict(load_checkpoint_state_dict(best))
    export_hf(model.cpu(), tokenizer, export_dir)
    return best, export_dir
