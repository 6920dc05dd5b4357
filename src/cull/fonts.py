"""Computer-font digits as canonical examples (paper §2.2 and §3.2).

The paper rendered the digits of 340 Windows fonts (after removing 9 that
humans could not read) at 24, 28 and 32 pt, rotated from -30° to 30° in steps
of 10°. This module does the same with the fonts installed on the machine.

Notation: F faces kept, S sizes, A angles, M = F * S * A * 10 images.

Method
------
1. **Discover** every ``.ttf``/``.otf`` file and every face inside each
   ``.ttc``/``.otc`` collection under the configured folders, in sorted path
   order. A folder that does not exist is a `FileNotFoundError`.
2. **Check each face**; the first failed check is its drop reason:

   - ``unreadable``: fontTools or FreeType cannot open it;
   - ``no_digits``: its best Unicode cmap lacks one of '0'-'9';
   - ``duplicate_glyphs``: two digits map to one glyph, or to identical outlines;
   - ``no_outlines``: no ``glyf``/``CFF`` table, or a digit glyph without a
     contour;
   - ``denied``: its full name, PostScript name or file stem is in ``deny``
     (case-insensitive);
   - face-type rules, each off by default, read from the OS/2 table (a face
     without one has PANOSE family 0, "any", and IBM class 0):
     ``excluded_family``, its PANOSE family type (2 Latin text, 3 Latin
     hand-written, 4 Latin decorative, 5 Latin symbol; 0 any, 1 no fit) is not
     in ``panose_families``; ``excluded_class``, its IBM family class (the high
     byte of sFamilyClass: 1 oldstyle serif ... 8 sans serif, 9 ornamental,
     10 script, 12 symbolic) is in ``exclude_ibm_classes``; ``monospace``, it is
     monospaced (PANOSE proportion 9 or post.isFixedPitch) and ``monospace``
     is false. The summary counts the faces each rule drops;
   - ``no_outlines`` again: FreeType draws no ink for a digit (seen when the
     reference renders of step 3 are made).
3. **Deduplicate designs**: the ten upright digits are rendered at
   `REFERENCE_PT`; a face whose renders match an earlier face's to within
   `DUPLICATE_TOLERANCE` grey levels at every pixel is a ``duplicate_design``.
   This merges one design shipped in several packages or formats, and weights
   or widths whose digits are the same.
4. **Legibility**, an automatic stand-in for the paper's human check: each
   face's upright digits, size-normalised as MNIST was (longer side 20 px,
   centre of mass at the centre), are classified by their nearest neighbour
   among the digits of all faces of *other* families (see `legibility`). The
   fraction of its ten digits recognised is the face's legibility; faces below
   ``min_legibility`` are ``illegible``. Dingbat, symbol, barcode and
   inverted (digit cut out of a disc or key cap) faces score near 0.
5. **max_faces**: when set, a seeded random subset of the legible faces is
   kept; the others are ``over_max_faces``.
6. **Render** each digit of each kept face at every size and angle as MNIST
   was made: at 1 pt = 1 px (72 dpi); white on black; anti-aliased by drawing
   at `SUPERSAMPLE` times the size and box-averaging down; rotated (positive
   angle = counter-clockwise); shifted so its centre of mass is the centre of
   the 28×28 frame (to 1/`SUPERSAMPLE` px). By default size is not
   normalised: point size is the scale variation. A glyph that would cross the
   frame's edge is scaled down until it fits and is flagged ``scaled_down``.
   Two options bring the renders closer to how MNIST's digits were made,
   each a "common transformation" of the paper's §3.2, never fitted to MNIST:

   - ``box``: each glyph is scaled so that its longer side is ``box`` px at
     `REFERENCE_PT` (``box`` × pt / `REFERENCE_PT` at other sizes), as MNIST
     fitted every digit into a 20-px box: faces whose digits are small or
     large for their point size then agree, while the sizes still vary;
   - ``stroke``: every stroke is thickened by ``stroke`` px (a dilation by a
     disc of diameter ``stroke`` on the supersampled glyph, at its final
     scale), as MNIST's pen strokes are wider than a text face's.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import os
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fontTools.pens.recordingPen import DecomposingRecordingPen
from fontTools.ttLib import TTCollection, TTFont, TTLibError
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter, grey_dilation
from tqdm import tqdm

DIGITS = "0123456789"
CANVAS = 28  # px, the MNIST frame
SUPERSAMPLE = 4  # draw at 4x, then box-average: MNIST's digits are anti-aliased
HALF = CANVAS * SUPERSAMPLE // 2  # half the frame, in supersampled px
FIT_MARGIN = 1  # supersampled px kept free so nearest-neighbour sampling never clips ink
REFERENCE_PT = 28  # point size of the upright renders used for dedup and legibility
NORMALISED_BOX = 20  # px; MNIST fitted each digit into a 20x20 box before centring
LEGIBILITY_BLUR = 1.0  # px sigma; makes nearest-neighbour matching tolerate 1-px shifts
LEGIBILITY_CHUNK = 2048  # digits compared at once: bounds memory to chunk x (10 F) floats
# Grey levels (of 255). On the system fonts, re-packaged designs differ by <= 3
# and the closest distinct designs (FreeSans vs NimbusSans) by >= 48.
DUPLICATE_TOLERANCE = 8
FONT_SUFFIXES = (".ttf", ".otf")
COLLECTION_SUFFIXES = (".ttc", ".otc")
REASONS = (  # drop reasons, in the order they are checked
    "unreadable",
    "no_digits",
    "duplicate_glyphs",
    "no_outlines",
    "denied",
    "excluded_family",
    "excluded_class",
    "monospace",
    "duplicate_design",
    "illegible",
    "over_max_faces",
)
PREVIEW_FACES = 20  # rows of the preview grid


def find_font_files(dirs: list[str | Path]) -> list[Path]:
    """Font files (TrueType, OpenType and collections) under `dirs`, sorted and unique."""
    files = set()
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"fonts.dirs: font folder {d} does not exist")
        for path in d.rglob("*"):
            if path.suffix.lower() in FONT_SUFFIXES + COLLECTION_SUFFIXES and path.is_file():
                files.add(path)
    return sorted(files)


@contextlib.contextmanager
def _quiet_fonttools():
    """Hide fontTools' metadata warnings (odd timestamps, checksums): outlines are unaffected."""
    logger = logging.getLogger("fontTools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def inspect_file(path: str | Path, *, deny: Sequence[str] = ()) -> list[dict]:
    """Run the checks of step 2 on every face of one font file.

    Returns
    -------
    list of dict
        One per face: ``file``, ``index``, ``name`` (full name), ``postscript``,
        ``family``, ``reason`` (one of `REASONS`, or None when every check
        passed) and ``detail`` (why, in words).
    """
    path = Path(path)
    deny = {d.lower() for d in deny}
    with _quiet_fonttools():
        if path.suffix.lower() not in COLLECTION_SUFFIXES:
            return [_inspect_face(path, 0, deny)]
        try:
            count = len(TTCollection(path, lazy=True).fonts)
        except (TTLibError, OSError, ValueError) as e:
            return [_record(path, 0, reason="unreadable", detail=str(e))]
        return [_inspect_face(path, i, deny) for i in range(count)]


def _record(path, index, *, name=None, postscript="", family=None, reason=None, detail="", face_type=None):
    name = name or path.stem
    return dict(file=str(path), index=index, name=name, postscript=postscript,
                family=family or name, reason=reason, detail=detail,
                **(face_type or {"panose_family": 0, "ibm_class": 0, "monospace": False}))


def _face_type(font: TTFont) -> dict:
    """The OS/2 table's PANOSE family type and IBM family class, and whether the face is monospaced."""
    os2 = font["OS/2"] if "OS/2" in font else None
    panose = getattr(os2, "panose", None)
    fixed = "post" in font and bool(font["post"].isFixedPitch)
    return {"panose_family": int(getattr(panose, "bFamilyType", 0)),
            "ibm_class": int(getattr(os2, "sFamilyClass", 0)) >> 8 & 0xFF,
            "monospace": fixed or int(getattr(panose, "bProportion", 0)) == 9}


def face_type_reason(face: dict, *, panose_families: Sequence[int] | None = None,
                     exclude_ibm_classes: Sequence[int] = (), monospace: bool = True) -> str | None:
    """The face-type rule (step 2) that drops `face` (a record of `inspect_file`), or None."""
    if panose_families is not None and face["panose_family"] not in panose_families:
        return "excluded_family"
    if face["ibm_class"] in exclude_ibm_classes:
        return "excluded_class"
    if not monospace and face["monospace"]:
        return "monospace"
    return None


def _inspect_face(path: Path, index: int, deny: set[str]) -> dict:
    try:
        font = TTFont(path, fontNumber=index, lazy=True)
        names = font["name"]
        cmap = font.getBestCmap() or {}
        record = functools.partial(
            _record, path, index, name=names.getDebugName(4), postscript=names.getDebugName(6) or "",
            family=names.getDebugName(16) or names.getDebugName(1), face_type=_face_type(font))
        reason = _check_outlines(font, cmap)
    except (TTLibError, OSError, ValueError, KeyError, AssertionError, struct.error) as e:
        # fontTools reports corrupt or missing tables with any of these.
        return _record(path, index, reason="unreadable", detail=f"{type(e).__name__}: {e}")
    if reason is not None:
        return record(reason=reason[0], detail=reason[1])
    r = record()
    if {r["name"].lower(), r["postscript"].lower(), path.stem.lower()} & deny:
        return record(reason="denied")
    try:
        _load(path, index, REFERENCE_PT)
    except OSError as e:  # FreeType refuses what fontTools read
        return record(reason="unreadable", detail=f"FreeType: {e}")
    return r  # FreeType drawing no ink is caught with the reference renders


def _check_outlines(font: TTFont, cmap: dict[int, str]) -> tuple[str, str] | None:
    """(reason, detail) for the first failed fontTools check on the digits, or None."""
    missing = [c for c in DIGITS if ord(c) not in cmap]
    if missing:
        return "no_digits", "cmap lacks " + "".join(missing)
    glyphs = [cmap[ord(c)] for c in DIGITS]
    if len(set(glyphs)) < len(DIGITS):
        return "duplicate_glyphs", "digits share a glyph"
    if not any(tag in font for tag in ("glyf", "CFF ", "CFF2")):
        return "no_outlines", "no glyf or CFF table"
    glyph_set = font.getGlyphSet()
    outlines = []
    for c, g in zip(DIGITS, glyphs):
        pen = DecomposingRecordingPen(glyph_set)  # resolves composite glyphs
        glyph_set[g].draw(pen)
        if not any(op in ("lineTo", "curveTo", "qCurveTo") for op, _ in pen.value):
            return "no_outlines", f"empty outline for {c!r}"
        outlines.append(pen.value)
    if any(outlines[i] == outlines[j] for i in range(10) for j in range(i)):
        return "duplicate_glyphs", "digits have identical outlines"
    return None


def _load(path, index, pt) -> ImageFont.FreeTypeFont:
    # Basic layout: single glyphs need no shaping, and this avoids depending on libraqm.
    return ImageFont.truetype(str(path), size=pt * SUPERSAMPLE, index=index,
                              layout_engine=ImageFont.Layout.BASIC)


def _upright(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    """Supersampled ink of one upright glyph cropped to its ink: (h, w) uint8, 0 = none."""
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        return np.zeros((0, 0), np.uint8)
    img = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(img).text((-left, -top), char, font=font, fill=255)
    ink = np.asarray(img)
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    if rows.size == 0:
        return np.zeros((0, 0), np.uint8)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass, with pixel i spanning [i, i + 1) (PIL's convention)."""
    mass = ink.astype(np.float64)
    total = mass.sum()
    cx = (mass.sum(0) @ (np.arange(ink.shape[1]) + 0.5)) / total
    cy = (mass.sum(1) @ (np.arange(ink.shape[0]) + 0.5)) / total
    return cx, cy


def _fit_scales(ink: np.ndarray, com: tuple[float, float], angles: list[int], limit: float = 1.0) -> np.ndarray:
    """(A,) scale <= `limit` at which the ink, rotated by each angle, fits the frame around `com`."""
    ys, xs = np.nonzero(ink)
    p = np.stack([xs + 0.5 - com[0], ys + 0.5 - com[1]])  # (2, K) ink pixel centres
    theta = np.radians(np.asarray(angles, np.float64))
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    # Canvas offsets of the rotated pixel centres (image y points down, so this is
    # counter-clockwise on screen), plus half of a rotated pixel's extent.
    reach = np.maximum(np.abs(cos * p[0] + sin * p[1]).max(1), np.abs(-sin * p[0] + cos * p[1]).max(1))
    reach += (np.abs(cos[:, 0]) + np.abs(sin[:, 0])) / 2
    return np.minimum(limit, (HALF - FIT_MARGIN) / reach)


def _thicken(ink: np.ndarray, radius: float) -> np.ndarray:
    """The ink dilated by a disc of `radius` supersampled px (grey-level max), padded so nothing clips."""
    r = int(math.ceil(radius))
    if r == 0:
        return ink
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xx**2 + yy**2 <= radius**2
    return grey_dilation(np.pad(ink, r), footprint=disc)


def _place(ink: Image.Image, com: tuple[float, float], angle: float, scale: float) -> np.ndarray:
    """The ink rotated counter-clockwise by `angle` degrees and scaled by `scale` about
    its centre of mass, which lands on the frame's centre: (28, 28) uint8.

    One affine resampling at the supersampled scale does rotation, scaling and
    the sub-pixel shift (the centre of mass moves with an affine map, so it needs
    no recomputing); a box average then brings it to 28x28. Nearest-neighbour
    sampling of the already anti-aliased 4x glyph is point-sampled supersampling:
    7x faster than bilinear in PIL and within 1/8 px after the box average.
    """
    phi = -math.radians(angle)  # PIL maps output to input, hence the inverse rotation
    a, b = math.cos(phi) / scale, math.sin(phi) / scale
    d, e = -b, a
    data = (a, b, com[0] - (a + b) * HALF, d, e, com[1] - (d + e) * HALF)
    frame = ink.transform((2 * HALF, 2 * HALF), Image.Transform.AFFINE, data, Image.Resampling.NEAREST)
    return np.asarray(frame.reduce(SUPERSAMPLE))  # box average, rounded


def reference_renders(path: str | Path, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ten upright digits of one face at `REFERENCE_PT`.

    Returns
    -------
    design : (10, 28, 28) uint8
        At their point size (scaled down only if too large), centred; compared
        by `duplicate_designs`.
    normalised : (10, 28, 28) uint8
        Longer side scaled to `NORMALISED_BOX` px, centred; input to `legibility`.
    """
    font = _load(path, index, REFERENCE_PT)
    design, normalised = [], []
    for c in DIGITS:
        ink = _upright(font, c)
        if ink.size == 0:  # FreeType drew nothing; the caller drops the face
            design.append(np.zeros((CANVAS, CANVAS), np.uint8))
            normalised.append(design[-1])
            continue
        com = _centre_of_mass(ink)
        img = Image.fromarray(ink)
        design.append(_place(img, com, 0, _fit_scales(ink, com, [0])[0]))
        normalised.append(_place(img, com, 0, NORMALISED_BOX * SUPERSAMPLE / max(ink.shape)))
    return np.stack(design), np.stack(normalised)


def render_face(path: str | Path, index: int = 0, *, sizes: list[int], angles: list[int],
                box: float | None = None, stroke: float = 0.0) -> dict:
    """Every digit of one face at every size and angle (step 6 of the method).

    `box` (px): scale each glyph so its longer side is box x pt / `REFERENCE_PT` px; None keeps the
    point size's own scale. `stroke` (px): thicken every stroke by this much, at the final scale.

    Returns
    -------
    dict of arrays, N = S * A * 10 rows ordered by size, then angle, then digit:
    ``images`` (N, 28, 28) uint8; ``labels``, ``size_pt``, ``angle`` (N,) int64;
    ``scaled_down`` (N,) bool.
    """
    S, A = len(sizes), len(angles)
    images = np.empty((S, A, 10, CANVAS, CANVAS), np.uint8)
    scaled = np.empty((S, A, 10), bool)
    for i, pt in enumerate(sizes):
        font = _load(path, index, pt)
        for digit, c in enumerate(DIGITS):
            ink = _upright(font, c)
            if ink.size == 0:
                raise ValueError(f"{path}: FreeType draws no ink for {c!r} at {pt} pt")
            target = 1.0 if box is None else box * SUPERSAMPLE * pt / REFERENCE_PT / max(ink.shape)
            ink = _thicken(ink, stroke * SUPERSAMPLE / 2 / target)  # stroke px once scaled by `target`
            com = _centre_of_mass(ink)
            img = Image.fromarray(ink)
            scales = _fit_scales(ink, com, angles, limit=target)
            scaled[i, :, digit] = scales < target
            for j, (angle, scale) in enumerate(zip(angles, scales)):
                images[i, j, digit] = _place(img, com, angle, scale)
    grid = np.meshgrid(sizes, angles, np.arange(10), indexing="ij")
    size_pt, angle, labels = (np.asarray(g, np.int64).ravel() for g in grid)
    return dict(images=images.reshape(-1, CANVAS, CANVAS), labels=labels,
                size_pt=size_pt, angle=angle, scaled_down=scaled.ravel())


def duplicate_designs(designs: np.ndarray, *, tolerance: int = DUPLICATE_TOLERANCE) -> np.ndarray:
    """Mark faces whose upright digits match an earlier face's.

    Parameters
    ----------
    designs : (F, 10, 28, 28) uint8
        Upright renders at one point size, in face order.
    tolerance : int
        Two faces are one design when no pixel of their ten digits differs by more.

    Returns
    -------
    (F,) bool, True for a duplicate of an earlier face; the first of a group is kept.
    """
    flat = designs.reshape(len(designs), -1).astype(np.int16)
    # A cheap necessary condition first: each digit's total ink differs by at
    # most tolerance per pixel.
    ink = flat.reshape(len(designs), 10, -1).sum(2)
    limit = tolerance * CANVAS * CANVAS
    dup = np.zeros(len(designs), bool)
    kept = np.zeros(0, np.int64)
    for f in range(len(designs)):
        near = kept[np.abs(ink[kept] - ink[f]).max(1) <= limit]
        if near.size and (np.abs(flat[near] - flat[f]).max(1) <= tolerance).any():
            dup[f] = True
        else:
            kept = np.append(kept, f)
    return dup


def legibility(digits: np.ndarray, families: np.ndarray, *, blur: float = LEGIBILITY_BLUR) -> np.ndarray:
    """Leave-one-family-out nearest-neighbour legibility of each face's digits.

    Each digit image is blurred (Gaussian, `blur` px), flattened and scaled to
    unit length; its nearest neighbour by cosine similarity among the digits of
    faces from other families gives its predicted label. Excluding the whole
    family, not just the face, stops the weights of one symbol font from
    recognising each other.

    Parameters
    ----------
    digits : (F, 10, 28, 28) uint8
        Upright, size-normalised digits 0-9 of each face.
    families : (F,) str
        Family name of each face; at least two distinct families are needed.

    Returns
    -------
    (F,) float in [0, 1]: fraction of the face's ten digits recognised. Higher
    is more legible.
    """
    F = len(digits)
    if digits.shape[1:] != (10, CANVAS, CANVAS):
        raise ValueError(f"legibility: expected digits of shape (F, 10, 28, 28), got {digits.shape}")
    if len(families) != F:
        raise ValueError(f"legibility: {F} faces but {len(families)} family names")
    _, family = np.unique(np.char.lower(np.asarray(families, str)), return_inverse=True)
    if family.max(initial=0) < 1:
        raise ValueError("legibility: needs faces from at least 2 families to compare; "
                         "set fonts.min_legibility to 0 to skip the check")
    x = gaussian_filter(digits.astype(np.float32), sigma=(0, 0, blur, blur))
    # 2x2 average pooling after the blur loses little and makes the comparison 4x cheaper.
    x = x.reshape(F * 10, CANVAS // 2, 2, CANVAS // 2, 2).mean((2, 4)).reshape(F * 10, -1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    label = np.tile(np.arange(10), F)
    group = np.repeat(family, 10)
    predicted = np.empty(F * 10, np.int64)
    for start in range(0, F * 10, LEGIBILITY_CHUNK):
        rows = slice(start, start + LEGIBILITY_CHUNK)
        sim = x[rows] @ x.T  # (chunk, 10 F) cosine similarities
        sim[group[rows, None] == group[None, :]] = -np.inf
        predicted[rows] = label[sim.argmax(1)]
    return (predicted == label).reshape(F, 10).mean(1)


def _map(fn, items: list, *, workers: int, desc: str, progress: bool, chunksize: int = 1) -> list:
    """fn over items in order, in `workers` processes (1: in this process), with a tqdm bar."""
    bar = functools.partial(tqdm, total=len(items), desc=desc, unit="face", disable=not progress)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in bar(items)]
    with multiprocessing.Pool(workers) as pool:
        return list(bar(pool.imap(fn, items, chunksize=chunksize)))  # imap keeps input order


def _reference(face: dict) -> tuple[np.ndarray, np.ndarray]:
    return reference_renders(face["file"], face["index"])


def _render(face: dict, *, sizes, angles, box=None, stroke=0.0) -> dict:
    return render_face(face["file"], face["index"], sizes=sizes, angles=angles, box=box, stroke=stroke)


def build_font_set(
    dirs: list[str | Path],
    *,
    sizes: list[int],
    angles: list[int],
    deny: Sequence[str] = (),
    min_legibility: float = 0.5,
    max_faces: int | None = None,
    panose_families: Sequence[int] | None = None,
    exclude_ibm_classes: Sequence[int] = (),
    monospace: bool = True,
    box: float | None = None,
    stroke: float = 0.0,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Select faces (steps 1-5 of the method) and render their digits (step 6).

    Parameters
    ----------
    dirs : folders searched recursively for font files.
    sizes : point sizes (1 pt = 1 px). angles : degrees, positive = counter-clockwise.
    deny : face names, PostScript names or file stems to drop (case-insensitive).
    min_legibility : faces whose `legibility` is below this are dropped; 0 skips the check.
    max_faces : keep at most this many faces, a random subset drawn with `seed`; None keeps all.
    panose_families, exclude_ibm_classes, monospace : the face-type rules of step 2 (`face_type_reason`);
        None, (), True: no rule.
    box, stroke : render options of step 6 (`render_face`); None, 0: none.
    workers : processes used; None = the CPUs this process may use. Results do not depend on it.

    Returns
    -------
    arrays : dict, the contents of ``fonts.npz``
        ``images`` (M, 28, 28) uint8, ``labels`` (M,) int64, ``face`` (M,) int32
        index into ``face_names``/``face_files``/``face_index``/``legibility``
        (F,), ``size_pt`` (M,) int64, ``angle`` (M,) int64, ``scaled_down`` (M,) bool.
    summary : dict
        Counts: faces found, faces with digits, ``dropped_<reason>`` for each of
        `REASONS`, faces kept, images, images scaled down; plus the illegible
        face names and any deny entries that matched no face.
    """
    if max_faces is not None and max_faces < 1:
        raise ValueError(f"fonts.max_faces: expected a positive count or null, got {max_faces}")
    if workers is None:
        workers = len(os.sched_getaffinity(0))
    files = find_font_files(dirs)
    if not files:
        raise FileNotFoundError(f"fonts.dirs: no .ttf/.otf/.ttc/.otc files under {', '.join(map(str, dirs))}")
    inspect = functools.partial(inspect_file, deny=list(deny))
    faces = [f for fs in _map(inspect, files, workers=workers, desc="fonts: check", progress=progress,
                              chunksize=16) for f in fs]
    seen = {k.lower() for f in faces for k in (f["name"], f["postscript"], Path(f["file"]).stem)}
    unmatched = [d for d in deny if d.lower() not in seen]
    if unmatched:
        warnings.warn(f"fonts.deny: {unmatched} match no face name or file stem", stacklevel=2)

    for f in faces:
        if f["reason"] is None:
            f["reason"] = face_type_reason(f, panose_families=panose_families,
                                           exclude_ibm_classes=exclude_ibm_classes, monospace=monospace)
    passed = [f for f in faces if f["reason"] is None]  # the same dicts: reasons set below count too
    if not passed:
        raise ValueError(f"fonts.dirs: none of the {len(faces)} faces under {dirs} has ten drawable digits")
    refs = _map(_reference, passed, workers=workers, desc="fonts: reference", progress=progress, chunksize=16)
    designs = np.stack([r[0] for r in refs])
    normalised = np.stack([r[1] for r in refs])
    for f in np.nonzero((designs.reshape(len(passed), 10, -1).max(2) == 0).any(1))[0]:
        passed[f]["reason"] = "no_outlines"
        passed[f]["detail"] = "FreeType draws no ink for a digit"
    drawable = [i for i, f in enumerate(passed) if f["reason"] is None]
    for j in np.nonzero(duplicate_designs(designs[drawable]))[0]:
        passed[drawable[j]]["reason"] = "duplicate_design"
    unique = [i for i in drawable if passed[i]["reason"] is None]

    scores = np.full(len(passed), np.nan)
    if min_legibility > 0:
        scores[unique] = legibility(normalised[unique], np.array([passed[i]["family"] for i in unique]))
        for i in unique:
            if scores[i] < min_legibility:
                passed[i]["reason"] = "illegible"
                passed[i]["detail"] = f"legibility {scores[i]:.1f}"
    legible = [i for i in unique if passed[i]["reason"] is None]
    if max_faces is not None and len(legible) > max_faces:
        chosen = set(np.random.default_rng(seed).choice(len(legible), size=max_faces, replace=False))
        for j, i in enumerate(legible):
            if j not in chosen:
                passed[i]["reason"] = "over_max_faces"
    kept = [i for i in legible if passed[i]["reason"] is None]
    if not kept:
        raise ValueError(f"fonts: no face left after selection (min_legibility={min_legibility})")

    render = functools.partial(_render, sizes=list(sizes), angles=list(angles), box=box, stroke=stroke)
    parts = _map(render, [passed[i] for i in kept], workers=workers, desc="fonts: render", progress=progress)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    arrays["face"] = np.repeat(np.arange(len(kept), dtype=np.int32), len(parts[0]["labels"]))
    arrays["face_names"] = np.array([passed[i]["name"] for i in kept], dtype=str)
    arrays["face_files"] = np.array([passed[i]["file"] for i in kept], dtype=str)
    arrays["face_index"] = np.array([passed[i]["index"] for i in kept], dtype=np.int32)
    arrays["legibility"] = scores[kept].astype(np.float32)

    count = lambda reason: sum(f["reason"] == reason for f in faces)  # noqa: E731
    summary = {
        "faces_found": len(faces),
        "faces_with_digits": len(faces) - count("unreadable") - count("no_digits"),
        **{f"dropped_{r}": count(r) for r in REASONS},
        "faces_kept": len(kept),
        "images": int(len(arrays["labels"])),
        "scaled_down": int(arrays["scaled_down"].sum()),
        "min_legibility": min_legibility,
        "rules": {"panose_families": None if panose_families is None else list(panose_families),
                  "exclude_ibm_classes": list(exclude_ibm_classes), "monospace": monospace},
        "render": {"box": box, "stroke": stroke},
        "illegible_faces": sorted(f["name"] for f in faces if f["reason"] == "illegible"),
        "deny_unmatched": unmatched,
    }
    return arrays, summary


def preview(arrays: dict[str, np.ndarray], *, faces: int = PREVIEW_FACES) -> Figure:
    """A grid to eyeball the rendered set.

    Rows are up to `faces` faces spread evenly over the kept ones. Left block:
    digits 0-9 upright at the middle size. Right block: digit (row mod 10) at
    each angle, then at each size upright.
    """
    sizes, angles = np.unique(arrays["size_pt"]), np.unique(arrays["angle"])
    mid = sizes[len(sizes) // 2]
    upright = angles[np.argmin(np.abs(angles))]
    n_faces = len(arrays["face_names"])
    rows = np.unique(np.linspace(0, n_faces - 1, min(faces, n_faces)).round().astype(int))
    index = {(f, d, s, a): m for m, (f, d, s, a) in enumerate(zip(
        arrays["face"], arrays["labels"], arrays["size_pt"], arrays["angle"]))}
    blank = np.zeros((CANVAS, CANVAS), np.uint8)
    grid = []
    for r, f in enumerate(rows):
        d = r % 10
        cells = [arrays["images"][index[f, k, mid, upright]] for k in range(10)] + [blank]
        cells += [arrays["images"][index[f, d, mid, a]] for a in angles] + [blank]
        cells += [arrays["images"][index[f, d, s, upright]] for s in sizes]
        grid.append(np.hstack(cells))
    mosaic = np.vstack(grid)
    fig = Figure(figsize=(mosaic.shape[1] / 40, mosaic.shape[0] / 40 + 0.6))
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks(np.arange(len(rows)) * CANVAS + CANVAS / 2,
                  [arrays["face_names"][f][:28] for f in rows], fontsize=7)
    ax.set_xticks([])
    ax.set_title(f"digits 0-9 at {mid} pt | one digit at {', '.join(map(str, angles))}° "
                 f"| at {', '.join(map(str, sizes))} pt", fontsize=8)
    return fig
