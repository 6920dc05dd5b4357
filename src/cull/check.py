"""The `cull check` tool: the detector and the sanitized classifier on a user's image files.

Reads PNG and .npy files (or folders of them), scores each with the two
models as the detect stage does (`cull.detection`), and returns one row per
file. A file that cannot be read becomes an ERROR row; the others still run.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cull.detection import _check_kind, _model_scores
from cull.models import load_checkpoint

IMAGE_SUFFIXES = (".png", ".npy")  # files `check_images` reads


def _image_files(paths: Iterable) -> list[tuple[Path, str | None]]:
    """Expand folders (their .png and .npy files, sorted, not recursive); pair each with an error or None."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            files += [(p, None) for p in found] or [(path, "folder holds no .png or .npy files")]
        elif not path.exists():
            files.append((path, "file not found"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            files.append((path, f"unsupported file type {path.suffix!r} (expected .png or .npy)"))
        else:
            files.append((path, None))
    return files


def _load_png(path: Path, *, channels: int, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable PNG ({type(e).__name__}: {e})") from None
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (C, H, W)
    return pixels.astype(np.float32) / 255.0


def _load_npy(path: Path, *, channels: int, size: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"not a readable .npy file ({e})") from None
    if array.ndim == 2 and channels == 1:
        array = array[None]
    if array.shape != (channels, size, size):
        raise ValueError(
            f"expected shape ({channels}, {size}, {size})"
            + (f" or ({size}, {size})" if channels == 1 else "")
            + f", got {array.shape}"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind != "f":
        raise ValueError(f"expected uint8 (0-255) or float (0-1) pixels, got dtype {array.dtype}")
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"float pixels must lie in [0, 1], got range [{array.min()}, {array.max()}]")
    return array.astype(np.float32)


def check_images(
    paths: Iterable[str | Path],
    *,
    unsanitized: str | Path | torch.nn.Module,
    sanitized: str | Path | torch.nn.Module,
    threshold: float,
    divergence: str = "kl",
    device: torch.device | str = "cpu",
) -> list[dict]:
    """Run the detector and the sanitized classifier on image files.

    PNG files are converted to grayscale for 1-channel models (RGB for
    3-channel) and resized to the model's 28x28 if needed, with no inversion
    (MNIST digits are light on dark). .npy files hold uint8 0-255 or float 0-1
    pixels, shaped (C, 28, 28), or (28, 28) for 1-channel models. A folder
    stands for its .png and .npy files (sorted, not recursive).

    Parameters
    ----------
    paths : files or folders.
    unsanitized, sanitized : checkpoint paths (`cull.models.save_checkpoint`)
        or models in eval mode.
    threshold : float, tau of the metrics JSON of the detect stage; it must
        have been calibrated for the same `divergence` kind.
    divergence : {"kl", "reverse", "js"}, default "kl"; see `cull.detection.divergence`.
    device : where to run the models.

    Returns
    -------
    One dict per file, in input order: ``path`` (str), ``pred`` (int, the
    sanitized model's class), ``divergence`` (float; higher = more likely
    adversarial), ``decision`` ("ACCEPT" if divergence <= threshold, else
    "REJECT"), ``error`` (None). A file that cannot be read gets pred and
    divergence None, decision "ERROR" and the reason in ``error``; the other
    files are still processed.
    """
    _check_kind(divergence)
    models = [
        m if isinstance(m, torch.nn.Module) else load_checkpoint(m, device)[0] for m in (unsanitized, sanitized)
    ]
    config = models[1].config
    if models[0].config.in_channels != config.in_channels:
        raise ValueError(
            f"models disagree: unsanitized takes {models[0].config.in_channels} channels, "
            f"sanitized {config.in_channels}"
        )
    loaders = {".png": _load_png, ".npy": _load_npy}
    rows, good, images = [], [], []
    for path, error in _image_files(paths):
        if error is None:
            try:
                images.append(
                    loaders[path.suffix.lower()](path, channels=config.in_channels, size=config.image_size)
                )
                good.append(len(rows))
            except ValueError as e:
                error = str(e)
        rows.append({"path": str(path), "pred": None, "divergence": None, "decision": "ERROR", "error": error})
    if images:
        scores, preds = _model_scores(*models, np.stack(images), device=device)
        for i, score, pred in zip(good, scores[divergence], preds):
            rows[i].update(
                pred=int(pred),
                divergence=float(score),
                decision="ACCEPT" if score <= threshold else "REJECT",
                error=None,
            )
    return rows
