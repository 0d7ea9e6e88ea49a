"""The training curve: Lightning's metrics.csv drawn as one PNG next to the checkpoints.

    path = save_training_curve(trainer)   # <model dir>/training_curve.png: train/val loss, val perplexity, lr
"""
import csv
import math
from pathlib import Path


def read_metrics(csv_path):
    """{column: [(step, value)]} from a CSVLogger metrics.csv (rows hold only some columns each)."""
    series = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def dots(points):
    return "o" if len(points) < 20 else None  # a short run's few points would not show as a line


def plot_metrics(series, out):
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    lr = next((k for k in series if k.startswith("lr")), None)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss_step", "train loss"), ("val_loss", "val loss")):
        if key in series:
            steps, values = zip(*series[key])
            axes[0].plot(steps, values, label=label, marker=dots(steps))
    axes[0].set(title="loss", xlabel="step")
    axes[0].legend()
    if "val_loss" in series:  # perplexity = exp(token-weighted mean loss)
        steps, values = zip(*series["val_loss"])
        axes[1].plot(steps, [math.exp(v) for v in values], marker=dots(steps), color="tab:orange")
    axes[1].set(title="val perplexity", xlabel="step")
    if lr:
        steps, values = zip(*series[lr])
        axes[2].plot(steps, values, marker=dots(steps), color="tab:green")
    axes[2].set(title="learning rate", xlabel="step")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return str(out)


def save_training_curve(trainer, out=None):
    """Draw the trainer's metrics.csv; returns the PNG path, or None when nothing was logged."""
    logger = trainer.logger
    if logger is None or not hasattr(logger, "log_dir"):
        return None
    logger.save()  # flush the CSV logger's buffer
    csv_path = Path(logger.log_dir, "metrics.csv")
    if not csv_path.exists():
        return None
    out = out or Path(trainer.default_root_dir, "training_curve.png")
    return plot_metrics(read_metrics(csv_path), out)
