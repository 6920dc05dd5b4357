"""The classifiers of the paper (its Figures 1 and 2) and their checkpoints.

Our copy of the paper lacks Figures 1 and 2. The authors' group reused Carlini
and Wagner's code ("Towards evaluating the robustness of neural networks",
2017), so we use the two nets from that code: the C&W MNIST net for MNIST and
the fonts, and the C&W CIFAR net, adapted to 28x28x3, for SVHN. README.md
gives the evidence. All models take (N, C, 28, 28) float32 in [0, 1] and
return logits (N, 10).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from cull.artifacts import atomic_path

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "cw_mnist"  # cw_mnist | cw_svhn
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10


ARCHS = {
    # name: (conv widths per block, fc widths, dropout after the first fc)
    "cw_mnist": ((32, 64), (200, 200), 0.5),
    "cw_svhn": ((64, 128), (256, 256), 0.5),
}


class CWNet(nn.Module):
    """Two blocks of [conv 3x3, ReLU, conv 3x3, ReLU, maxpool 2], then three linear layers.

    Valid padding, as in Carlini and Wagner's Keras models. For 28x28 input the
    feature map goes 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.arch not in ARCHS:
            raise ValueError(f"unknown arch {config.arch!r} (valid: {', '.join(ARCHS)})")
        self.config = config
        (w1, w2), (f1, f2), dropout = ARCHS[config.arch]
        c = config.in_channels
        self.features = nn.Sequential(
            nn.Conv2d(c, w1, 3), nn.ReLU(), nn.Conv2d(w1, w1, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3), nn.ReLU(), nn.Conv2d(w2, w2, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = ((config.image_size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w2 * side * side, f1), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(f1, f2), nn.ReLU(),
            nn.Linear(f2, config.num_classes),
        )

    def forward(self, x):  # (N, C, H, W) in [0, 1] -> logits (N, classes)
        return self.classifier(self.features(x))


def arch_for(arch: str, in_channels: int) -> str:
    """Resolve the `train.arch` param: 'auto' picks the paper's net for the input's channels."""
    if arch != "auto":
        return arch
    return "cw_mnist" if in_channels == 1 else "cw_svhn"


def build_model(config: ModelConfig) -> CWNet:
    return CWNet(config)


def save_checkpoint(path, model: CWNet, *, meta: dict) -> None:
    """Write the state dict, the model config and `meta` (params, metrics) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(model.config),
        "state_dict": state,
        "meta": meta,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object, not the path: torch names the archive's inner folder after a path's file name,
        # here a random temporary one, so equal checkpoints would differ in bytes (and in their DVC hash).
        torch.save(checkpoint, f)


def load_checkpoint(path, device: torch.device | str = "cpu", *, in_channels: int | None = None):
    """Load a checkpoint written by `save_checkpoint`; return (model in eval mode, meta).

    Raises one clear `ValueError` if the file is missing, corrupt, of another
    format, or made for `in_channels` other than those asked for.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        # The reason torch gives for a refused pickle ("Unsupported global: GLOBAL posix.system") comes last.
        reason = " ".join(str(e).split())
        unsafe = reason.find("Unsupported global")
        reason = reason[unsafe:unsafe + 160] if unsafe >= 0 else reason[:160]
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a cull checkpoint of format {CHECKPOINT_FORMAT}")
    try:
        config = ModelConfig(**checkpoint["config"])
        model = build_model(config)
        model.load_state_dict(checkpoint["state_dict"])
    except ValueError as e:  # an unknown arch in the metadata
        raise ValueError(f"{path}: {e} (not a checkpoint this version of cull wrote)") from None
    except (TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f"{path}: checkpoint does not match its architecture ({str(e).splitlines()[0][:160]})") from None
    broken = [k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:  # a diverged training run: every logit would be NaN downstream
        raise ValueError(f"{path}: {len(broken)} of {len(checkpoint['state_dict'])} weight tensors hold NaN or inf "
                         f"(first: {broken[0]}); retrain this model")
    if in_channels is not None and config.in_channels != in_channels:
        raise ValueError(
            f"{path}: model expects {config.in_channels}-channel images, data has {in_channels}"
        )
    return model.to(device).eval(), checkpoint.get("meta", {})


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 in [0, 1]."""
    return images_uint8.float().div_(255.0)
