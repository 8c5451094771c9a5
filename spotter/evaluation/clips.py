"""Offline evaluation of a model on labelled clips: loss, accuracy, macro F1, per-class P/R, confusion.

Macro F1 is the unweighted mean of per-class F1 over the classes that occur
in the evaluated data (a class with no clips, e.g. ``silence`` in a folder of
words only, is left out of the mean rather than counted as 0).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_confusion_matrix
from tqdm.auto import tqdm


@torch.inference_mode()
def predict(model, dataset, device: torch.device | str = "cpu", batch_size: int = 256, progress: bool = True,
            workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every item of ``dataset`` (``(waveform, label)`` pairs)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    logits, labels = [], []
    for x, y in tqdm(loader, desc="evaluating", unit="batch", disable=not progress, file=sys.stderr, leave=False):
        logits.append(model(x.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(logits), torch.cat(labels)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, class_names) -> dict:
    """Every figure ``spotter eval`` reports, from logits ``(N, C)`` and integer labels ``(N,)``."""
    n_classes = len(class_names)
    loss = torch.nn.functional.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    preds = logits.argmax(1)
    confusion = multiclass_confusion_matrix(preds, labels, num_classes=n_classes).numpy()  # rows: truth
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    tp = np.diag(confusion)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "n": int(len(labels)),
        "loss": float(loss),
        "accuracy": float(tp.sum() / max(1, len(labels))),
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "labels": list(class_names),
        "confusion": confusion.astype(int).tolist(),
        "per_class": per_class,
    }


def evaluate(model, dataset, device="cpu", batch_size: int = 256, progress: bool = True, workers: int = 0) -> dict:
    logits, labels = predict(model, dataset, device, batch_size, progress, workers)
    return metrics_from_logits(logits, labels, model.labels)


def format_report(result: dict) -> str:
    """A human-readable report: headline figures, per-class table, confusion matrix."""
    names = result["labels"]
    lines = [
        f"clips: {result['n']}   loss: {result['loss']:.4f}   accuracy: {result['accuracy']:.2%}   "
        f"macro F1: {result['f1_macro']:.4f}",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'clips':>8}",
    ]
    for name in names:
        c = result["per_class"][name]
        lines.append(f"{name:<10}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}{c['support']:>8}")
    width = max(5, max(len(n) for n in names) + 1)
    lines += ["", "confusion (rows: true class, columns: predicted)",
              " " * 10 + "".join(f"{n[:width - 1]:>{width}}" for n in names)]
    for name, row in zip(names, result["confusion"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def confusion_figure(result: dict, title: str = ""):
    """The confusion matrix: colours the share of each true class (rows), counts written in the cells."""
    from ..plots import pyplot

    plt = pyplot()
    confusion = np.asarray(result["confusion"], dtype=float)
    names = result["labels"]
    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if confusion[i, j]:
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_title(title or f"accuracy {result['accuracy']:.2%}, macro F1 {result['f1_macro']:.3f}, n={result['n']}")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    return fig


def plot_confusion(result: dict, path, title: str = "") -> None:
    """Save :func:`confusion_figure` as a PNG."""
    from ..plots import save_figure

    save_figure(confusion_figure(result, title), path, dpi=120)
