"""SVHN format 1 -> 28x28 digits (paper §3.1), on a tiny synthetic folder."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from cull import data, svhn

EDGE = (10, 20, 30)  # colour of each synthetic digit box's one-pixel edge
INSIDE = (200, 100, 50)  # colour inside the box
H, W = 60, 80  # synthetic photo size


def box(left, top, width, height, label):
    return dict(left=left, top=top, width=width, height=height, label=label)


# Per image: its digit boxes. Image 1 has one digit (the 1x1 layout), image 2 has four (K x 1 references).
DIGITS = {
    "1.png": [box(10, 5, 20, 40, 10)],  # label 10 is the digit 0; tall: 40 x 20 -> 28 x 14
    "2.png": [
        box(0, 0, 30, 15, 3),  # wide: 15 x 30 -> 14 x 28
        box(40, 10, 8, 20, 7),  # 8 px wide: discarded
        box(70, 50, 20, 20, 1),  # clipped to 10 x 10 at the corner: kept
        box(75, 5, 20, 20, 5),  # clipped to 5 px wide: discarded
    ],
}
KEPT_LABELS = [0, 3, 1]


def draw(digits, seed):
    """A noisy photo with each box drawn as an EDGE outline filled with INSIDE."""
    image = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for d in digits:
        x0, y0 = max(0, d["left"]), max(0, d["top"])
        x1, y1 = min(W, d["left"] + d["width"]), min(H, d["top"] + d["height"])
        image[y0:y1, x0:x1] = EDGE
        image[y0 + 1:y1 - 1, x0 + 1:x1 - 1] = INSIDE
    return image


def write_digit_struct(path: Path, entries: dict[str, list[dict]]) -> None:
    """Write a MATLAB v7.3-style digitStruct.mat with h5py object references."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        name_refs, bbox_refs = [], []
        for i, (name, digits) in enumerate(entries.items()):
            codes = np.array([ord(c) for c in name], dtype=np.uint16)[:, None]
            name_refs.append(refs.create_dataset(f"name{i}", data=codes).ref)
            group = refs.create_group(f"bbox{i}")
            for key in svhn.BBOX_KEYS:
                values = [float(d[key]) for d in digits]
                if len(values) == 1:
                    group.create_dataset(key, data=np.array([[values[0]]]))
                else:
                    value_refs = [refs.create_dataset(f"{key}{i}_{k}", data=np.array([[v]])).ref
                                  for k, v in enumerate(values)]
                    group.create_dataset(key, data=np.array(value_refs, dtype=h5py.ref_dtype)[:, None])
            bbox_refs.append(group.ref)
        top = f.create_group("digitStruct")
        top.create_dataset("name", data=np.array(name_refs, dtype=h5py.ref_dtype)[:, None])
        top.create_dataset("bbox", data=np.array(bbox_refs, dtype=h5py.ref_dtype)[:, None])


def write_split(folder: Path, entries=DIGITS) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    photos = {}
    for seed, (name, digits) in enumerate(entries.items()):
        photos[name] = draw(digits, seed)
        Image.fromarray(photos[name]).save(folder / name)
    write_digit_struct(folder / svhn.DIGIT_STRUCT, entries)
    return photos


@pytest.fixture
def split_dir(tmp_path):
    folder = tmp_path / "svhn" / "train"
    return folder, write_split(folder)


def test_reads_both_reference_layouts(split_dir):
    folder, _ = split_dir
    entries = svhn.read_digit_struct(folder / svhn.DIGIT_STRUCT)
    assert [name for name, _ in entries] == list(DIGITS)
    for (_, boxes), digits in zip(entries, DIGITS.values()):
        for key in svhn.BBOX_KEYS:
            np.testing.assert_array_equal(boxes[key], [d[key] for d in digits])


def test_load_split_discards_small_and_maps_zero(split_dir):
    folder, _ = split_dir
    images, labels = svhn.load_split(folder, min_side=10)
    assert images.shape == (3, 28, 28, 3) and images.dtype == np.uint8
    assert labels.tolist() == KEPT_LABELS and labels.dtype == np.int64
    assert len(svhn.load_split(folder, min_side=11)[1]) == 2  # the clipped 10 x 10 goes too


def test_crop_contents_and_clipping(split_dir):
    _, photos = split_dir
    photo = photos["2.png"]
    np.testing.assert_array_equal(svhn.crop_digit(photo, 0, 0, 30, 15), photo[0:15, 0:30])
    assert svhn.crop_digit(photo, 70, 50, 20, 20).shape == (10, 10, 3)
    assert svhn.crop_digit(photo, -5, -5, 10, 10).shape == (5, 5, 3)
    assert svhn.crop_digit(photo, 100, 5, 10, 10).shape == (10, 0, 3)  # wholly outside: empty


def test_resize_keeps_aspect_and_pads_with_border_colour(split_dir):
    folder, photos = split_dir
    images, _ = svhn.load_split(folder, min_side=10)
    tall, wide = images[0], images[1]
    # 40 x 20 crop -> 28 x 14, centred: 7 padding columns each side in the edge colour.
    assert (tall[:, :7] == EDGE).all() and (tall[:, 21:] == EDGE).all()
    crop = photos["1.png"][5:45, 10:30]
    expected = np.asarray(Image.fromarray(crop).resize((14, 28), svhn.RESAMPLE))
    np.testing.assert_array_equal(tall[:, 7:21], expected)
    assert (tall[14, 10] == INSIDE).all()  # the inside survives at the centre
    # 15 x 30 crop -> 14 x 28: 7 padding rows above and below.
    assert (wide[:7] == EDGE).all() and (wide[21:] == EDGE).all()
    assert (wide[14, 14] == INSIDE).all()


def test_border_colour_is_mean_of_edge_pixels():
    crop = np.full((12, 10, 3), 100, dtype=np.uint8)
    crop[0] = 0  # top row: 10 of the 2*10 + 2*10 = 40 edge pixels
    crop[3:9, 3:7] = 255  # interior pixels do not count
    np.testing.assert_allclose(svhn.border_colour(crop), [75.0, 75.0, 75.0])
    out = svhn.to_square(crop)
    assert out.shape == (28, 28, 3)
    # 12 x 10 -> 28 x 23: columns 0-1 and 25-27 are padding.
    assert (out[:, :2] == 75).all() and (out[:, 25:] == 75).all()


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"svhn/test/digitStruct\.mat: SVHN data not found \(expected "
                                                r".*svhn/train/ and .*svhn/test/.*train\.tar\.gz and test\.tar\.gz "
                                                r"from http://ufdl\.stanford\.edu/housenumbers/"):
        svhn.check_layout(tmp_path / "svhn", "test")


def test_corrupt_inputs_name_the_file(split_dir):
    folder, _ = split_dir
    (folder / "2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"2\.png: not a readable image"):
        svhn.load_split(folder, min_side=10)
    (folder / "2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2\.png: image listed in digitStruct\.mat not found"):
        svhn.load_split(folder, min_side=10)
    (folder / svhn.DIGIT_STRUCT).write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(ValueError, match=r"digitStruct\.mat: not a readable v7\.3 digitStruct\.mat"):
        svhn.load_split(folder, min_side=10)
    with h5py.File(folder / svhn.DIGIT_STRUCT, "w") as f:
        f.create_group("digitStruct")
    with pytest.raises(ValueError, match=r"digitStruct\.mat: not a readable v7\.3 digitStruct\.mat \(KeyError"):
        svhn.read_digit_struct(folder / svhn.DIGIT_STRUCT)


def test_bad_label(tmp_path):
    folder = tmp_path / "train"
    write_split(folder, {"1.png": [box(10, 5, 20, 40, 11)]})
    with pytest.raises(ValueError, match=r"digitStruct\.mat: bad label for 1\.png digit 1 "
                                         r"\(expected an integer 1..10, found 11\.0\)"):
        svhn.load_split(folder, min_side=10)


def test_prepare_svhn_is_nchw(tmp_path):
    raw = tmp_path / "svhn"
    write_split(raw / "train")
    write_split(raw / "test")
    out = data.prepare("svhn", raw, val_size=1, train_limit=None, test_limit=None, seed=0, min_side=10)
    assert out["train_x"].shape == (2, 3, 28, 28) and out["val_x"].shape == (1, 3, 28, 28)
    assert out["test_x"].shape == (3, 3, 28, 28) and out["test_y"].tolist() == KEPT_LABELS
    assert str(out["dataset"]) == "svhn"
    assert (out["test_x"][0, :, :, 0] == np.array(EDGE)[:, None]).all()  # channels first
