"""SVHN format 1 (full house-number images with digit boxes) to 28x28 digit images.

Paper §3.1 builds single-digit images from format 1 rather than using the
noisy 32x32 format 2:

1. crop each digit by its bounding box (clipped to the image);
2. discard crops whose width or height is under `min_side` (10) pixels;
3. resize so the larger side is 28, keeping the aspect ratio;
4. pad to 28x28x3, centred, with the average colour of the crop's border.

The paper reports 40 556 training and 9790 test digits after this.

A split folder (``train/`` or ``test/``, as unpacked from ``train.tar.gz`` and
``test.tar.gz``) holds ``1.png, 2.png, ...`` and ``digitStruct.mat``, a MATLAB
v7.3 (HDF5) file: ``/digitStruct/name`` and ``/digitStruct/bbox`` are N x 1
object references; each bbox group has ``height``, ``label``, ``left``,
``top`` and ``width``, each a 1 x 1 double for a one-digit image or K x 1
references to 1 x 1 doubles for K digits. Names are uint16 character codes.
Label 10 means the digit 0.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

SVHN_URL = "http://ufdl.stanford.edu/housenumbers/"  # serves train.tar.gz and test.tar.gz
DIGIT_STRUCT = "digitStruct.mat"
BBOX_KEYS = ("height", "label", "left", "top", "width")
ZERO_LABEL = 10  # SVHN stores the digit 0 as label 10
SIDE = 28  # output images are SIDE x SIDE x 3, like MNIST's 28 x 28
# Bilinear with PIL's built-in antialiasing when shrinking: smooth, no ringing.
RESAMPLE = Image.Resampling.BILINEAR


def check_layout(raw: str | Path, part: str) -> Path:
    """Return ``raw/part`` if it holds ``digitStruct.mat``; else say exactly where the data goes."""
    folder = Path(raw) / part
    if not (folder / DIGIT_STRUCT).is_file():
        raise FileNotFoundError(
            f"{folder / DIGIT_STRUCT}: SVHN data not found (expected {raw}/train/ and {raw}/test/, each "
            f"holding the PNGs and {DIGIT_STRUCT}: download train.tar.gz and test.tar.gz from "
            f"{SVHN_URL} and unpack both into {raw}/)"
        )
    return folder


def read_digit_struct(path: str | Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Read a v7.3 ``digitStruct.mat``.

    Returns
    -------
    list of (name, boxes)
        One entry per image, in file order: the PNG file name and a dict
        mapping each of `BBOX_KEYS` to a (K,) float64 array for its K digits.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            names, bboxes = f["digitStruct/name"][()].ravel(), f["digitStruct/bbox"][()].ravel()
            out = []
            for name_ref, bbox_ref in tqdm(zip(names, bboxes), total=len(names), desc=f"read {path}", unit="img"):
                name = "".join(map(chr, f[name_ref][()].ravel()))  # uint16 character codes
                out.append((name, {key: _numbers(f, f[bbox_ref][key]) for key in BBOX_KEYS}))
    except (OSError, KeyError, TypeError, ValueError) as e:
        # OSError: not HDF5 or truncated; KeyError: a missing group or dataset;
        # TypeError/ValueError: a field that is not a reference where one is needed.
        raise ValueError(f"{path}: not a readable v7.3 digitStruct.mat ({type(e).__name__}: {e})") from None
    if len(names) != len(bboxes):
        raise ValueError(f"{path}: /digitStruct/name and /digitStruct/bbox differ in length "
                         f"(expected equal, found {len(names)} and {len(bboxes)})")
    for i, (name, boxes) in enumerate(out):
        counts = sorted({len(v) for v in boxes.values()})
        if len(counts) != 1:
            raise ValueError(f"{path}: image {i + 1} ({name}) has bbox fields of different lengths "
                             f"(expected one value per digit, found lengths {counts})")
        if not all(np.isfinite(v).all() for v in boxes.values()):
            raise ValueError(f"{path}: image {i + 1} ({name}) has a non-finite bbox value (expected numbers)")
    return out


def _numbers(f: h5py.File, dataset: h5py.Dataset) -> np.ndarray:
    """A bbox field as (K,) float64: a 1x1 double, or K x 1 references to 1x1 doubles."""
    if h5py.check_dtype(ref=dataset.dtype) is not None:
        return np.array([f[ref][()].item() for ref in dataset[()].ravel()], dtype=np.float64)
    return np.asarray(dataset[()], dtype=np.float64).ravel()


def crop_digit(image: np.ndarray, left: float, top: float, width: float, height: float) -> np.ndarray:
    """Crop (H, W, 3) `image` by a bounding box clipped to the image; (h, w, 3), possibly empty."""
    x0, y0 = max(0, round(left)), max(0, round(top))
    x1, y1 = min(image.shape[1], round(left + width)), min(image.shape[0], round(top + height))
    return image[y0:max(y0, y1), x0:max(x0, x1)]


def border_colour(crop: np.ndarray) -> np.ndarray:
    """Mean colour (3,) float64 of the pixels on the edge of (h, w, 3) `crop`, each counted once."""
    edge = np.zeros(crop.shape[:2], dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    return crop[edge].mean(axis=0)


def to_square(crop: np.ndarray, *, side: int = SIDE) -> np.ndarray:
    """Resize (h, w, 3) uint8 `crop` so its larger side is `side`, then pad it to (side, side, 3).

    The aspect ratio is kept; the crop is centred and the padding is its
    border colour (see `border_colour`), rounded to uint8.
    """
    h, w = crop.shape[:2]
    scale = side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(crop).resize((new_w, new_h), RESAMPLE))
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:] = np.rint(border_colour(crop)).astype(np.uint8)
    top, left = (side - new_h) // 2, (side - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def load_split(folder: str | Path, *, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn one SVHN format-1 folder into digit images (paper §3.1).

    Parameters
    ----------
    folder : path
        Holds the PNGs and ``digitStruct.mat``.
    min_side : int, keyword-only
        Crops narrower or shorter than this (after clipping) are discarded.

    Returns
    -------
    images : (N, 28, 28, 3) uint8
        One per kept digit, in file order then box order.
    labels : (N,) int64
        Digits 0..9 (SVHN's label 10 becomes 0).
    """
    folder = Path(folder)
    mat = folder / DIGIT_STRUCT
    images, labels = [], []
    for name, boxes in tqdm(read_digit_struct(mat), desc=f"crop {folder}", unit="img"):
        image = _read_png(folder / name)
        for k in range(len(boxes["label"])):
            value = float(boxes["label"][k])
            if not (value.is_integer() and 1 <= value <= ZERO_LABEL):
                raise ValueError(f"{mat}: bad label for {name} digit {k + 1} "
                                 f"(expected an integer 1..{ZERO_LABEL}, found {value})")
            label = int(value)
            crop = crop_digit(image, boxes["left"][k], boxes["top"][k], boxes["width"][k], boxes["height"][k])
            if min(crop.shape[:2]) < min_side:
                continue  # paper §3.1: tiny digits are hard even for humans
            images.append(to_square(crop))
            labels.append(label % ZERO_LABEL)
    if not images:
        return np.zeros((0, SIDE, SIDE, 3), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _read_png(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or one clear error naming `path`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image listed in {DIGIT_STRUCT} not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
