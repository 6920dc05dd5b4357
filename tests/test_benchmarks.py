"""The logic inside the one-off measurement scripts of benchmarks/ (not their timings)."""
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_times_run_from_each_stage_to_the_next():
    paper_scale = _script("paper_scale")
    lines = ["2026-12-07T01:00:00 Running stage 'fonts':",
             "2026-12-07T01:00:10 fonts: 340 faces",
             "not a stamped line",
             "2026-12-07T01:00:12 Running stage 'canonical@0':",
             "2026-12-07T01:01:52 Updating lock file 'dvc.lock'"]
    assert paper_scale.stage_times(lines) == [{"stage": "fonts", "seconds": 12}, {"stage": "canonical@0", "seconds": 100}]


def test_stage_times_read_clock_stamps_past_midnight():
    paper_scale = _script("paper_scale")
    lines = ["23:59:00 Running stage 'train@headline-0':", "00:01:30 Running stage 'attack@headline-0':",
             "00:02:00 done"]
    assert paper_scale.stage_times(lines) == [{"stage": "train@headline-0", "seconds": 150},
                                              {"stage": "attack@headline-0", "seconds": 30}]


def test_a_second_run_keeps_the_first_runs_stage_times(tmp_path):
    paper_scale = _script("paper_scale")
    path = tmp_path / "stage_times.csv"
    path.write_text("stage,seconds\nfonts,12\ntrain@headline-0,90\n")
    merged = paper_scale.merge_times(path, [{"stage": "train@headline-0", "seconds": 95},
                                            {"stage": "train@self-0.9999999-0", "seconds": 70}])
    assert merged == [{"stage": "fonts", "seconds": 12}, {"stage": "train@headline-0", "seconds": 95},
                      {"stage": "train@self-0.9999999-0", "seconds": 70}]


def test_slant_leans_the_top_right_and_keeps_the_centre_row():
    canonical_selection = _script("canonical_selection")
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 4:24, 13] = 255  # a vertical bar in column 13
    slanted = canonical_selection.slanted(image, 0.25, 0.25, seed=0)[0]
    assert slanted.shape == (28, 28) and slanted.dtype == np.uint8
    top = np.average(np.arange(28), weights=slanted[5].astype(float))
    bottom = np.average(np.arange(28), weights=slanted[22].astype(float))
    centre = np.average(np.arange(28), weights=slanted[13].astype(float) + slanted[14].astype(float))
    assert top > 13 + 1.5 and bottom < 13 - 1.5  # rows 8.5 above the centre move 0.25 * 8.5 px right
    assert abs(centre - 13) < 0.25
    assert np.array_equal(canonical_selection.slanted(image, 0.0, 0.0, seed=0), image)


def test_elastic_moves_pixels_by_a_seeded_smooth_field():
    canonical_selection = _script("canonical_selection")
    rng = np.random.default_rng(1)
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(100, 256, (3, 16, 8))
    moved = canonical_selection.elastic(images, 8.0, 3.0, seed=0)
    assert moved.shape == images.shape and moved.dtype == np.uint8
    assert np.array_equal(moved, canonical_selection.elastic(images, 8.0, 3.0, seed=0))  # seeded
    assert not np.array_equal(moved, images)
    assert not np.array_equal(moved[0], canonical_selection.elastic(images[:1], 8.0, 3.0, seed=1)[0])
    # a smooth field of about a pixel keeps the ink's mass and place
    assert abs(moved.astype(float).sum() / images.astype(float).sum() - 1) < 0.1
    assert np.array_equal(canonical_selection.elastic(images, 0.0, 3.0, seed=0), images)
