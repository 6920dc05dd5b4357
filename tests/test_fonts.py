"""Tests for cull.fonts on fonts built here with fontTools' FontBuilder.

The "good" fonts draw seven-segment digits (distinct, readable polygons) in
three designs; broken variants each fail one selection check.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont
from fontTools.ttLib.tables.O_S_2f_2 import Panose
from scipy import ndimage

from cull import fonts
from cull.artifacts import save_figure

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SEGMENTS = {  # a top, b upper right, c lower right, d bottom, e lower left, f upper left, g middle
    0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc",
    5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}
SIZES, ANGLES = [24, 32], [-30, 0, 30]  # small grid keeps the tests fast


def seven_segment(digit, *, width=500, height=700, stroke=90, slant=0.0):
    """Rectangles (x0, y0, x1, y1) in font units; `slant` shears x by y."""
    w, h, t = width, height, stroke
    boxes = {
        "a": (0, h - t, w, h), "b": (w - t, h / 2, w, h), "c": (w - t, 0, w, h / 2),
        "d": (0, 0, w, t), "e": (0, 0, t, h / 2), "f": (0, h / 2, t, h),
        "g": (0, h / 2 - t / 2, w, h / 2 + t / 2),
    }
    return [(boxes[s], slant) for s in SEGMENTS[digit]]


def square_with_hole(digit):
    """A 'symbol' glyph: a 600-unit square with a square hole that grows with the digit."""
    hole = 60 + 40 * digit
    return [("frame", (0, 0, 600, 600), (300 - hole / 2, 300 - hole / 2, 300 + hole / 2, 300 + hole / 2))]


def draw(shapes):
    pen = TTGlyphPen(None)
    for shape in shapes:
        if shape[0] == "frame":  # outer clockwise, inner counter-clockwise: a hole
            _, (x0, y0, x1, y1), (u0, v0, u1, v1) = shape
            contours = [[(x0, y0), (x0, y1), (x1, y1), (x1, y0)], [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]]
        else:
            (x0, y0, x1, y1), slant = shape
            contours = [[(x + slant * y, y) for x, y in ((x0, y0), (x0, y1), (x1, y1), (x1, y0))]]
        for points in contours:
            pen.moveTo(points[0])
            for p in points[1:]:
                pen.lineTo(p)
            pen.closePath()
    return pen.glyph()


def make_font(path, family, *, glyph_shapes=None, cmap=None, panose_family=0, ibm_class=0, fixed_pitch=False,
              **segment_options):
    """Write a TrueType font whose glyphs d0..d9 draw `glyph_shapes[i]` (default seven-segment)."""
    order = [".notdef"] + [f"d{i}" for i in range(10)]
    shapes = glyph_shapes or [seven_segment(i, **segment_options) for i in range(10)]
    glyphs = {".notdef": TTGlyphPen(None).glyph(), **{f"d{i}": draw(s) for i, s in enumerate(shapes)}}
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap(cmap or {ord(str(i)): f"d{i}" for i in range(10)})
    fb.setupGlyf(glyphs)
    glyf = fb.font["glyf"]
    fb.setupHorizontalMetrics({g: (1600, getattr(glyf[g], "xMin", 0)) for g in order})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": "Regular", "fullName": family,
                       "psName": family.replace(" ", "")})
    panose = Panose()
    panose.bFamilyType = panose_family
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200, panose=panose,
                sFamilyClass=ibm_class << 8)
    fb.setupPost(isFixedPitch=int(fixed_pitch))
    fb.save(str(path))
    return Path(path)


@pytest.fixture(scope="module")
def font_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fonts")
    make_font(d / "seg_a.ttf", "Seg A")
    shutil.copy(d / "seg_a.ttf", d / "seg_a_copy.ttf")  # same design, another file
    b = make_font(d / "b.ttf", "Seg B", stroke=140, slant=0.15)
    c = make_font(d / "c.ttf", "Seg C", stroke=60, width=420)
    collection = TTCollection()
    collection.fonts = [TTFont(b), TTFont(c)]
    collection.save(str(d / "seg_bc.ttc"))
    b.unlink(), c.unlink()
    make_font(d / "symbol.ttf", "Symbol Squares", glyph_shapes=[square_with_hole(i) for i in range(10)])
    make_font(d / "missing7.ttf", "Missing Seven", cmap={ord(str(i)): f"d{i}" for i in range(10) if i != 7})
    make_font(d / "shared.ttf", "Shared Glyph", cmap={ord(str(i)): f"d{1 if i == 7 else i}" for i in range(10)})
    make_font(d / "same_outline.ttf", "Same Outline",
              glyph_shapes=[seven_segment(1 if i == 7 else i) for i in range(10)])
    make_font(d / "empty3.ttf", "Empty Three", glyph_shapes=[[] if i == 3 else seven_segment(i) for i in range(10)])
    (d / "README.txt").write_text("not a font")
    return d


def build(font_dir, **options):
    options = dict(sizes=SIZES, angles=ANGLES, workers=1, progress=False) | options
    return fonts.build_font_set([font_dir], **options)


@pytest.fixture(scope="module")
def built(font_dir):
    return build(font_dir)


def ink_centre(image):
    return np.array(ndimage.center_of_mass(image.astype(float)))


def test_each_face_gets_its_reason(font_dir):
    reasons = {(Path(f["file"]).name, f["index"]): f["reason"]
               for path in fonts.find_font_files([font_dir]) for f in fonts.inspect_file(path)}
    assert reasons == {
        ("empty3.ttf", 0): "no_outlines", ("missing7.ttf", 0): "no_digits",
        ("same_outline.ttf", 0): "duplicate_glyphs", ("seg_a.ttf", 0): None,
        ("seg_a_copy.ttf", 0): None, ("seg_bc.ttc", 0): None, ("seg_bc.ttc", 1): None,
        ("shared.ttf", 0): "duplicate_glyphs", ("symbol.ttf", 0): None,
    }


def test_selection_counts(built):
    arrays, summary = built
    assert summary["faces_found"] == 9
    assert summary["faces_with_digits"] == 8
    assert {k: v for k, v in summary.items() if k.startswith("dropped_") and v} == {
        "dropped_no_digits": 1, "dropped_duplicate_glyphs": 2, "dropped_no_outlines": 1,
        "dropped_duplicate_design": 1, "dropped_illegible": 1}
    assert summary["illegible_faces"] == ["Symbol Squares"]
    assert summary["faces_kept"] == 3
    assert list(arrays["face_names"]) == ["Seg A", "Seg B", "Seg C"]
    assert list(arrays["face_index"]) == [0, 0, 1]  # Seg B and Seg C are faces 0 and 1 of the .ttc
    assert summary["images"] == 3 * len(SIZES) * len(ANGLES) * 10


def test_arrays_look_like_mnist(built):
    arrays, summary = built
    images, M = arrays["images"], 3 * len(SIZES) * len(ANGLES) * 10
    assert images.shape == (M, 28, 28) and images.dtype == np.uint8
    assert arrays["labels"].dtype == np.int64 and set(arrays["labels"]) == set(range(10))
    assert arrays["face"].dtype == np.int32 and arrays["face"].max() == 2
    assert arrays["face_names"].dtype.kind == "U" and arrays["face_files"].shape == (3,)
    for key in ("labels", "face", "size_pt", "angle", "scaled_down"):
        assert arrays[key].shape == (M,), key
    assert set(arrays["size_pt"]) == set(SIZES) and set(arrays["angle"]) == set(ANGLES)
    assert arrays["scaled_down"].sum() == summary["scaled_down"]
    # White digit on black: bright ink, dark border, anti-aliased (grey levels present).
    assert (images.max((1, 2)) >= 200).all()
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    assert border.mean() < 5
    assert len(np.unique(images)) > 100
    # Centre of mass at the frame's centre, as MNIST was made (to a fraction of a pixel).
    centres = np.stack([ink_centre(im) for im in images])
    assert np.abs(centres - 13.5).max() < 0.5


def test_larger_point_size_gives_larger_ink(font_dir):
    small, large = (fonts.render_face(font_dir / "seg_a.ttf", sizes=[pt], angles=[0])["images"] for pt in (16, 28))
    for a, b in zip(small, large):
        rows_a, rows_b = np.nonzero(a.any(1))[0], np.nonzero(b.any(1))[0]
        assert np.ptp(rows_b) > np.ptp(rows_a) + 5


def test_rotation_is_counter_clockwise(font_dir):
    out = fonts.render_face(font_dir / "seg_a.ttf", sizes=[28], angles=[0, 30])
    upright, rotated = out["images"][out["labels"] == 1]  # "1" is a vertical bar
    assert not np.array_equal(upright, rotated)

    def lean(image):  # x of the top ink minus x of the bottom ink
        ys, xs = np.nonzero(image > 128)
        return xs[ys == ys.min()].mean() - xs[ys == ys.max()].mean()

    assert abs(lean(upright)) < 1.5
    assert lean(rotated) < -3  # counter-clockwise on screen: the top moves left


def test_too_large_glyphs_are_scaled_down_to_fit(tmp_path):
    wide = make_font(tmp_path / "wide.ttf", "Wide", width=1400)  # 45 px wide at 32 pt
    out = fonts.render_face(wide, sizes=[32], angles=[0, 30])
    assert out["scaled_down"][out["labels"] != 1].all()
    assert not out["scaled_down"][out["labels"] == 1].any()  # the bar is narrow
    assert all(np.abs(ink_centre(im) - 13.5).max() < 0.5 for im in out["images"])
    # Scaled, not cropped: the upright 8 keeps its 2:1 aspect (1400 x 700 units).
    upright_eight = out["images"][(out["labels"] == 8) & (out["angle"] == 0)][0]
    rows, cols = np.nonzero(upright_eight.any(1))[0], np.nonzero(upright_eight.any(0))[0]
    assert np.ptp(cols) + 1 == 28
    assert abs((np.ptp(cols) + 1) / (np.ptp(rows) + 1) - 2) < 0.2


def test_rendering_is_deterministic(font_dir, built):
    again = fonts.render_face(font_dir / "seg_bc.ttc", 1, sizes=SIZES, angles=ANGLES)
    first = built[0]["images"][built[0]["face"] == 2]
    assert np.array_equal(again["images"], first)
    parallel, summary = build(font_dir, workers=2)
    for key, value in built[0].items():
        assert np.array_equal(parallel[key], value), key
    assert summary == built[1]


def test_deny_by_name_or_file_stem(font_dir):
    with pytest.warns(UserWarning, match="no such font"):
        arrays, summary = build(font_dir, deny=["seg c", "SEG_A", "no such font"])
    assert summary["dropped_denied"] == 2
    # With seg_a.ttf denied, its copy is no longer a duplicate and stays.
    assert summary["dropped_duplicate_design"] == 0
    assert [Path(f).name for f in arrays["face_files"]] == ["seg_a_copy.ttf", "seg_bc.ttc"]
    assert summary["deny_unmatched"] == ["no such font"]


def test_max_faces_keeps_a_seeded_subset(font_dir):
    (a, summary), (b, _) = (build(font_dir, max_faces=2, seed=3) for _ in range(2))
    assert summary["faces_kept"] == 2 and summary["dropped_over_max_faces"] == 1
    assert list(a["face_names"]) == list(b["face_names"])
    with pytest.raises(ValueError, match="max_faces: expected a positive count"):
        build(font_dir, max_faces=0)


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"font folder .*nowhere does not exist"):
        build(tmp_path / "nowhere")


def test_folder_without_fonts_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .ttf/.otf/.ttc/.otc files"):
        build(tmp_path)


def test_legibility_flags_mislabelled_digits(font_dir):
    refs = [fonts.reference_renders(font_dir / "seg_a.ttf"),
            fonts.reference_renders(font_dir / "seg_bc.ttc", 0),
            fonts.reference_renders(font_dir / "seg_bc.ttc", 1)]
    digits = np.stack([r[1] for r in refs])
    shuffled = np.roll(digits[0], 1, axis=0)  # "0" drawn as 9, "1" as 0, ...
    scores = fonts.legibility(np.concatenate([digits, shuffled[None]]), np.array(["A", "B", "C", "A"]))
    assert (scores[:3] >= 0.8).all()
    assert scores[3] <= 0.2


def test_legibility_needs_two_families():
    with pytest.raises(ValueError, match="at least 2 families"):
        fonts.legibility(np.zeros((2, 10, 28, 28), np.uint8), np.array(["A", "a"]))


def test_duplicate_designs_within_tolerance():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (2, 10, 28, 28), dtype=np.uint8)
    near_x = np.clip(x.astype(int) + rng.integers(-3, 4, x.shape), 0, 255).astype(np.uint8)
    assert list(fonts.duplicate_designs(np.stack([x, y, near_x]))) == [False, False, True]


def test_preview_is_a_figure(built, tmp_path):
    save_figure(tmp_path / "preview.png", fonts.preview(built[0]))
    assert (tmp_path / "preview.png").stat().st_size > 1000


@pytest.mark.skipif(not DEJAVU.is_file(), reason="DejaVu Sans is not installed")
def test_real_system_font():
    (face,) = fonts.inspect_file(DEJAVU)
    assert face["reason"] is None and face["name"] == "DejaVu Sans"
    out = fonts.render_face(DEJAVU, sizes=[28], angles=[0])
    heights = [np.ptp(np.nonzero(im.any(1))[0]) + 1 for im in out["images"]]
    assert 18 <= min(heights) and max(heights) <= 24  # ~0.73 em digit height at 28 px per em


def test_face_type_rules_drop_and_count_their_faces(tmp_path):
    make_font(tmp_path / "text.ttf", "Text Face", panose_family=2, ibm_class=8)
    make_font(tmp_path / "deco.ttf", "Deco Face", panose_family=4, stroke=140)
    make_font(tmp_path / "ornament.ttf", "Ornament Face", panose_family=2, ibm_class=9, stroke=60, width=420)
    make_font(tmp_path / "mono.ttf", "Mono Face", panose_family=2, fixed_pitch=True, slant=0.15)
    faces = {f["name"]: f for path in fonts.find_font_files([tmp_path]) for f in fonts.inspect_file(path)}
    assert (faces["Text Face"]["panose_family"], faces["Text Face"]["ibm_class"]) == (2, 8)
    assert faces["Mono Face"]["monospace"] and not faces["Text Face"]["monospace"]
    rules = {"panose_families": [2], "exclude_ibm_classes": [9], "monospace": False}
    assert {n: fonts.face_type_reason(f, **rules) for n, f in faces.items()} == {
        "Text Face": None, "Deco Face": "excluded_family", "Ornament Face": "excluded_class",
        "Mono Face": "monospace"}
    assert all(fonts.face_type_reason(f) is None for f in faces.values())  # no rule by default
    _, summary = build(tmp_path, min_legibility=0, **rules)
    assert summary["faces_kept"] == 1
    assert [summary[f"dropped_{r}"] for r in ("excluded_family", "excluded_class", "monospace")] == [1, 1, 1]
    assert summary["rules"] == {"panose_families": [2], "exclude_ibm_classes": [9], "monospace": False}


def ink_box(image, level=64):
    rows, cols = np.nonzero(image >= level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_box_normalises_the_longer_side_and_keeps_the_size_variation(font_dir):
    out = {pt: fonts.render_face(font_dir / "seg_a.ttf", sizes=[pt], angles=[0], box=14.0)["images"]
           for pt in (28, 32)}
    for pt, images in out.items():
        heights = [max(ink_box(image)) for image in images]  # the digit 1 too: its longer side is its height
        assert all(abs(h - 14 * pt / 28) <= 1 for h in heights), (pt, heights)
    plain = fonts.render_face(font_dir / "seg_a.ttf", sizes=[28], angles=[0])["images"]
    assert max(ink_box(plain[8])) > 17  # 700 units of a 1000-unit em at 28 pt: 19.6 px without the box


def test_stroke_thickens_every_stroke(font_dir):
    thin, thick = (fonts.render_face(font_dir / "seg_a.ttf", sizes=[28], angles=[0, 30], stroke=s)["images"]
                   for s in (0.0, 2.0))
    for a, b in zip(thin, thick):
        assert b.astype(float).sum() > 1.2 * a.astype(float).sum()
    h0, w0 = ink_box(thin[1])  # the digit 1, upright: two vertical segments' width grows by about 2 px
    h1, w1 = ink_box(thick[1])
    assert 1 <= w1 - w0 <= 3 and 1 <= h1 - h0 <= 3
    np.testing.assert_allclose(ink_centre(thick[8]), ink_centre(thin[8]), atol=0.5)  # still centred
