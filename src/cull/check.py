"""The `cull check` tool: a detector and the sanitized classifier on a user's image files.

Reads PNG and .npy files (or folders of them), scores each with a detector as
the detect stage does (`cull.detection`, `cull.detectors`), and returns one
row per file. A file that cannot be read becomes an ERROR row; the others still run.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cull.detection import DIVERGENCES, _model_scores
from cull.detectors import BASELINES, ClassGaussians, feature_squeezing_score, mahalanobis_score, penultimate_features
from cull.models import load_checkpoint
from cull.schema import TWO_SEED
from cull.training import predict_logits

DETECTORS = (*DIVERGENCES, *BASELINES, TWO_SEED)  # what `cull check --detector` takes

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


def letterbox(image, size: int):
    """A non-square image padded to a square with its border's median colour, then scaled to size x size.

    As MNIST was made: the digit keeps its aspect ratio instead of being stretched.
    """
    from PIL import Image

    w, h = image.size
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0).ravel()) if border.ndim > 1 else int(np.median(border))
    side = max(w, h)
    square = Image.new(image.mode, (side, side), fill[0] if image.mode == "L" and isinstance(fill, tuple) else fill)
    square.paste(image, ((side - w) // 2, (side - h) // 2))
    return square.resize((size, size), Image.Resampling.BILINEAR)


def _load_png(path: Path, *, channels: int, size: int) -> tuple[np.ndarray, str | None]:
    """(C, size, size) float32 pixels in [0, 1], and a note saying how the image was fitted (None if as is)."""
    from PIL import Image, UnidentifiedImageError

    note = None
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            w, h = image.size
            if w != h:
                image, note = letterbox(image, size), f"letterboxed {w}x{h} to {size}x{size}"
            elif w != size:
                image, note = image.resize((size, size), Image.Resampling.BILINEAR), f"scaled {w}x{h} to {size}x{size}"
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable PNG ({type(e).__name__}: {' '.join(str(e).split())})") from None
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (C, H, W)
    return pixels.astype(np.float32) / 255.0, note


def _load_npy(path: Path, *, channels: int, size: int) -> tuple[np.ndarray, None]:
    return _npy_pixels(path, channels=channels, size=size), None


def _npy_pixels(path: Path, *, channels: int, size: int) -> np.ndarray:
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
    detector: str = "kl",
    settings: dict | None = None,
    gaussians: ClassGaussians | None = None,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """Run a detector and the sanitized classifier on image files.

    PNG files are converted to grayscale for 1-channel models (RGB for
    3-channel) and resized to the model's 28x28 if needed, with no inversion
    (MNIST digits are light on dark). .npy files hold uint8 0-255 or float 0-1
    pixels, shaped (C, 28, 28), or (28, 28) for 1-channel models. A folder
    stands for its .png and .npy files (sorted, not recursive).

    Parameters
    ----------
    paths : files or folders.
    unsanitized, sanitized : checkpoint paths (`cull.models.save_checkpoint`)
        or models in eval mode. For "two-seed", the unsanitized models of seed
        s and of its partner seed, the partner being the classifier.
    threshold : float, tau of the metrics JSON of the detect stage; it must
        have been calibrated for the same `detector`.
    detector : one of `DETECTORS`, default "kl": a divergence of
        `cull.detection.divergence` (the two models), "squeeze" or
        "mahalanobis" (`cull.detectors`, on the sanitized model alone), or
        "two-seed" (the KL of the two models given).
    settings : the squeezers, {"bits", "median"}, for "squeeze" (the detect metrics record them).
    gaussians : the fitted class Gaussians, for "mahalanobis" (the detect stage's .npz holds them).
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
    if detector not in DETECTORS:
        raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {detector!r}")
    if detector == "mahalanobis" and gaussians is None:
        raise ValueError("detector mahalanobis: needs the class Gaussians fitted by the detect stage")
    models = [
        m if isinstance(m, torch.nn.Module) else load_model(m, device)[0] for m in (unsanitized, sanitized)
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
                pixels, note = loaders[path.suffix.lower()](path, channels=config.in_channels, size=config.image_size)
                images.append(pixels)
                good.append(len(rows))
            except ValueError as e:
                error, note = str(e), None
        rows.append({"path": str(path), "pred": None, "divergence": None, "decision": "ERROR", "error": error,
                     "note": note if error is None else None})
    if images:
        scores, preds = score_images(detector, np.stack(images), *models, settings=settings, gaussians=gaussians,
                                     device=device)
        for i, score, pred in zip(good, scores, preds):
            rows[i].update(
                pred=int(pred),
                divergence=float(score),
                decision="ACCEPT" if score <= threshold else "REJECT",
                error=None,
            )
    return rows


def score_images(detector: str, images: np.ndarray, unsanitized, sanitized, *, settings: dict | None = None,
                 gaussians: ClassGaussians | None = None, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """(N,) scores of `detector` (see `check_images`) and (N,) classes of the sanitized model, for (N, C, H, W) images."""
    if detector in DIVERGENCES or detector == TWO_SEED:
        scores, preds = _model_scores(unsanitized, sanitized, images, device=device)
        return scores["kl" if detector == TWO_SEED else detector], preds
    preds = predict_logits(sanitized, images, device=device).argmax(1).numpy()
    if detector == "squeeze":
        settings = settings or {}
        return feature_squeezing_score(sanitized, images, bits=settings.get("bits", 1),
                                       median=settings.get("median", 2), device=device), preds
    return mahalanobis_score(gaussians, penultimate_features(sanitized, images, device=device)), preds


def load_model(path, device="cpu"):
    """`cull.models.load_checkpoint`, with the reason torch refuses a pickle that would run code named in full.

    torch's refusal starts with a long paragraph about its defaults; the part a
    user needs ("unsupported GLOBAL posix.system") comes last and is cut from
    load_checkpoint's one line, so only when loading fails is the file probed
    again for it.
    """
    import re
    import warnings

    import torch

    from cull.models import load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load_checkpoint(path, device)
        except ValueError as error:
            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # torch raises many types for a refused or damaged file
                found = re.search(r"unsupported GLOBAL (\S+)|Unsupported global: GLOBAL (\S+)", str(e))
                if found:
                    what = found.group(1) or found.group(2)
                    raise ValueError(f"{path}: refused to load: it would run code ({what}); "
                                     "not a checkpoint cull wrote") from None
            raise error from None
