"""One plain training loop and batched evaluation.

Data stays in memory as one uint8 tensor (MNIST is 47 MB), so there is no
DataLoader: each step indexes a seeded permutation. Seeded end to end, the same
params give byte-identical weights on the same machine.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cull.models import CWNet, ModelConfig, arch_for, build_model, to_float
from cull.params import Train
from cull.runtime import seed_everything

EVAL_BATCH = 1000  # large batches for inference; no gradients are kept


def make_optimizer(model: torch.nn.Module, train: Train) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay,
        nesterov=train.nesterov,
    )


def make_schedule(optimizer: torch.optim.Optimizer, train: Train) -> torch.optim.lr_scheduler.LambdaLR:
    """Keras' inverse-time decay, stepped once per batch: lr_t = lr / (1 + lr_decay * t).

    Carlini's train_models.py trains with Keras' SGD(decay=1e-6), whose update t
    uses exactly this rate; lr_decay 0 keeps the rate constant.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + train.lr_decay * step))


def train_model(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    train: Train,
    epochs: int,
    seed: int,
    device: torch.device,
    eval_images: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    desc: str = "train",
    on_epoch: Callable[[int, CWNet], dict] | None = None,
) -> tuple[CWNet, list[dict]]:
    """Train a fresh model on (N, C, 28, 28) uint8 images and (N,) labels.

    Returns the model (eval mode) and one history row per epoch with the mean
    training loss and accuracy, plus the accuracy on `eval_images` if given.
    `on_epoch(epoch, model)`, if given, runs after each epoch with the model in
    eval mode; the numbers it returns join that epoch's history row.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    if len(images) == 0:
        raise ValueError("cannot train on an empty training set")
    seed_everything(seed)
    config = ModelConfig(arch=arch_for(train.arch, images.shape[1]), in_channels=images.shape[1])
    model = build_model(config).to(device)
    low_precision = train.precision == "bfloat16"
    if low_precision:  # oneDNN's bfloat16 convolutions want NHWC; weights stay float32 (autocast casts per op)
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, train)
    schedule = make_schedule(optimizer, train)
    x_all = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    order = torch.Generator().manual_seed(seed)
    n = len(x_all)
    history = []
    steps_per_epoch = (n + train.batch_size - 1) // train.batch_size
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", mininterval=1.0)
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, train.batch_size):
            idx = perm[start : start + train.batch_size]
            x, y = to_float(x_all[idx]), y_all[idx]
            if low_precision:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    logits = model(x.contiguous(memory_format=torch.channels_last)).float()
            else:
                logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            bar.update(1)
        row = {"epoch": epoch, "loss": loss_sum / n, "train_acc": correct / n}
        if eval_images is not None:
            row["eval_acc"] = accuracy(model, eval_images, eval_labels, device=device)
        if on_epoch is not None:
            row.update(on_epoch(epoch, model.eval()))
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
        history.append(row)
    bar.close()
    if low_precision:
        model = model.to(memory_format=torch.contiguous_format)  # checkpoints keep the usual layout
    return model.eval(), history


@torch.inference_mode()
def predict_logits(model, images: np.ndarray, *, device: torch.device, batch: int = EVAL_BATCH) -> torch.Tensor:
    """(N, C, 28, 28) uint8 or float in [0, 1] -> logits (N, 10) float32 on the CPU."""
    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.as_tensor(images[start : start + batch]).to(device)
        x = to_float(x) if x.dtype == torch.uint8 else x.float()
        out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 10)


def accuracy(model, images: np.ndarray, labels: np.ndarray, *, device: torch.device) -> float:
    logits = predict_logits(model, images, device=device)
    return float((logits.argmax(1).numpy() == np.asarray(labels)).mean())


def holdout_split(groups: np.ndarray, *, test_fraction: float, by_group: bool, seed: int):
    """Seeded train/test index split of N items (paper §3.2: a random 80/20 split of the fonts).

    With `by_group`, whole groups (font faces) go to one side, so the hold-out
    measures generalisation to unseen faces rather than unseen renders.
    Returns (train_idx, test_idx), both sorted int64 arrays.
    """
    rng = np.random.default_rng(seed)
    n = len(groups)
    if by_group:
        unique = np.unique(groups)
        test_groups = rng.choice(unique, size=max(1, round(test_fraction * len(unique))), replace=False)
        is_test = np.isin(groups, test_groups)
    else:
        is_test = np.zeros(n, dtype=bool)
        is_test[rng.choice(n, size=max(1, round(test_fraction * n)), replace=False)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
