import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cull.check import check_images
from cull.schema import ROC_FPRS
from cull.detection import (
    DIVERGENCES,
    accept_mask,
    all_divergences,
    calibrate_threshold,
    cdf_rows,
    detection_metrics,
    divergence,
    empirical_cdf,
    roc_auc,
    score_attacks,
    system_accuracy,
    tpr_at_fpr,
)
from cull.models import ModelConfig, build_model, save_checkpoint
from cull.training import predict_logits

ROOT = Path(__file__).resolve().parents[1]


def _logits(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- divergences


def test_kl_matches_hand_computation():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.5, 0.3, 0.2])
    hand = 0.7 * math.log(0.7 / 0.5) + 0.2 * math.log(0.2 / 0.3) + 0.1 * math.log(0.1 / 0.2)
    got = all_divergences(np.log(p)[None], np.log(q)[None])
    np.testing.assert_allclose(got["kl"], [hand], rtol=1e-12)
    reverse = 0.5 * math.log(0.5 / 0.7) + 0.3 * math.log(0.3 / 0.2) + 0.2 * math.log(0.2 / 0.1)
    np.testing.assert_allclose(got["reverse"], [reverse], rtol=1e-12)


def test_kl_resolves_near_zero_probabilities():
    # P = softmax(0, 0, -69.08) has p3 ~ 1e-30; Q = softmax(0, -200, 0) has q2 ~ 1e-87,
    # which float32 softmax rounds to 0, making a naive KL infinite.
    u, s = _logits([0.0, 0.0, -69.0776]), _logits([0.0, -200.0, 0.0])
    assert torch.softmax(s.float(), 1)[0, 1] == 0.0
    d = all_divergences(u, s)
    # KL(P||Q) ~ p2 (log p2 - log q2) = 0.5 * 200; the 1e-30 terms are below float64 resolution.
    np.testing.assert_allclose(d["kl"], [100.0], rtol=1e-12)
    # KL(Q||P) ~ q3 (log q3 - log p3) = 0.5 * 69.0776
    np.testing.assert_allclose(d["reverse"], [0.5 * 69.0776], rtol=1e-12)
    assert all(np.isfinite(v).all() for v in d.values())
    huge = _logits([0.0, -1e30, 0.0])  # p = 0 exactly after exp underflow: guarded, not NaN
    assert np.isfinite(divergence(huge, u)).all() and np.isfinite(divergence(u, huge)).all()


def test_divergences_zero_for_identical_and_nonnegative():
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.normal(scale=8.0, size=(300, 10)))
    b = torch.tensor(rng.normal(scale=8.0, size=(300, 10))) - 50.0  # all-negative logits
    for kind in DIVERGENCES:
        np.testing.assert_allclose(divergence(a, a, kind=kind), 0.0, atol=1e-15)
        d = divergence(a, b, kind=kind)
        assert np.isfinite(d).all() and (d >= 0).all() and (d > 0).any()


def test_js_symmetric_and_at_most_ln2():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.normal(scale=20.0, size=(200, 10)))
    b = torch.tensor(rng.normal(scale=20.0, size=(200, 10)))
    js = divergence(a, b, kind="js")
    np.testing.assert_allclose(js, divergence(b, a, kind="js"), rtol=1e-12, atol=1e-15)
    assert (js <= math.log(2)).all()
    disjoint = divergence(_logits([300.0, 0.0]), _logits([0.0, 300.0]), kind="js")
    np.testing.assert_allclose(disjoint, [math.log(2)], rtol=1e-12)


def test_divergence_rejects_bad_input():
    with pytest.raises(ValueError, match="expected one of kl, reverse, js"):
        divergence(_logits([0.0, 1.0]), _logits([0.0, 1.0]), kind="hellinger")
    with pytest.raises(ValueError, match="expected finite values"):
        divergence(_logits([0.0, float("nan")]), _logits([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected shape \(N, K\)"):
        divergence(torch.zeros(10), torch.zeros(10))
    with pytest.raises(ValueError, match="expected equal"):
        divergence(torch.zeros(2, 10), torch.zeros(3, 10))


# ---------------------------------------------------------------- threshold and metrics


@pytest.mark.parametrize("n, acceptance", [(1000, 0.98), (5000, 0.94), (50, 0.94), (37, 0.9), (7, 1.0)])
def test_calibration_hits_target_rate(n, acceptance):
    scores = np.random.default_rng(n).exponential(0.01, size=n)
    tau = calibrate_threshold(scores, acceptance=acceptance)
    rate = accept_mask(scores, threshold=tau).mean()
    assert acceptance <= rate < acceptance + 1.0 / n  # the smallest rate >= target that n allows
    if float(acceptance * n).is_integer():
        assert rate == pytest.approx(acceptance)
    assert tau == np.quantile(scores, acceptance, method="inverted_cdf")


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError, match=r"acceptance: expected a value in \(0.0, 1.0\], got 1.5"):
        calibrate_threshold(np.ones(5), acceptance=1.5)
    with pytest.raises(ValueError, match="expected at least one score"):
        calibrate_threshold(np.array([]), acceptance=0.98)
    with pytest.raises(ValueError, match="contain NaN"):
        calibrate_threshold(np.array([0.1, np.nan]), acceptance=0.98)


def test_system_accounting_by_hand():
    # normal: accepted [T, T, F, T], right [T, T, T, F] -> correct iff both: [T, T, F, F]
    normal = system_accuracy([0.1, 1.0, 2.0, 0.2], [1, 2, 3, 4], [1, 2, 3, 0], threshold=1.0, adversarial=False)
    assert normal == {"detect": 0.75, "classifier": 0.75, "system": 0.5}
    # adversarial: rejected [F, F, T, T, F], right [T, F, T, F, T] -> correct iff either: [T, F, T, T, T]
    adv = system_accuracy([0.1, 0.5, 2.0, 3.0, 0.2], [1, 0, 3, 0, 2], [1, 2, 3, 4, 2], threshold=1.0, adversarial=True)
    assert adv == {"detect": 0.4, "classifier": 0.6, "system": 0.8}
    with pytest.raises(ValueError, match="expected equal lengths, got 2 scores, 1 predictions, 1 labels"):
        system_accuracy([0.1, 0.2], [1], [1], threshold=1.0, adversarial=True)


def test_auc_known_cases():
    normal = np.arange(100.0)
    assert roc_auc(normal, normal + 1000) == 1.0
    assert roc_auc(normal, normal) == 0.5
    assert roc_auc(normal + 1000, normal) == 0.0
    # adv 1 vs normals 0, 1, 2: win, tie, loss = 1.5; adv 3 wins all = 3 -> 4.5 / 6
    assert roc_auc([0.0, 1.0, 2.0], [1.0, 3.0]) == 0.75


def test_tpr_at_fpr():
    normal, adv = np.arange(100.0), np.array([0.5, 50.5, 95.5, 98.5, 200.0])
    assert tpr_at_fpr(normal, adv, fpr=0.05) == 0.6  # tau = 94: rejects normals 95..99, 5%
    assert tpr_at_fpr(normal, adv, fpr=0.01) == 0.4  # tau = 98: rejects normal 99, 1%
    with pytest.raises(ValueError, match="fpr: expected a value below 1"):
        tpr_at_fpr(normal, adv, fpr=1.0)


def _synthetic_scores():
    """A hand-made `score_attacks` result: val 0.00..0.99, test 0.000..0.099 and 1.5 x 10."""
    val = np.arange(100) / 100
    test = np.concatenate([np.arange(90) / 1000, np.full(10, 1.5)])
    scores = {
        "val_y": np.zeros(100, int), "test_y": np.zeros(100, int), "test_pred": np.r_[np.zeros(95, int), np.ones(5, int)],
        "igsm_y": np.zeros(4, int), "igsm_iterations": np.array([5]), "igsm_5_pred": np.array([0, 1, 1, 1]),
        "cw_source": np.zeros(4, int), "cw_pred": np.ones(4, int), "cw_kappa": np.array([0.0, 0.0, 0.1, 5.0]),
        "cw_success": np.array([True, False, True, False]),
    }
    for kind in DIVERGENCES:
        scores.update({f"val_{kind}": val, f"test_{kind}": test})
        scores[f"igsm_5_{kind}"] = np.array([0.5, 0.99, 1.0, 2.0])
        scores[f"cw_{kind}"] = np.array([3.0, 0.0, 0.1, 3.0])
    return scores


def test_detection_metrics_by_hand():
    m = detection_metrics(_synthetic_scores(), acceptance=0.98, divergence="kl")
    assert m["threshold"] == 0.97  # k = ceil(0.98 * 100) = 98th smallest
    rate = lambda leaf: leaf["rate"]  # noqa: E731 (rates are count leaves {k, n, rate})
    assert m["normal"]["val_accept"] == {"k": 98, "n": 100, "rate": 0.98} and rate(m["normal"]["test_accept"]) == 0.9
    # test: accepted are the first 90; right are the first 95 -> 90 correct
    assert rate(m["normal"]["classifier"]) == 0.95 and rate(m["normal"]["system_acc"]) == 0.9
    igsm = m["igsm"]["5"]  # rejected [F, T, T, T]; right [T, F, F, F]
    assert igsm["n"] == 4 and rate(igsm["detect"]) == 0.75 and rate(igsm["classifier"]) == 0.25
    assert rate(igsm["system"]) == 1.0
    assert igsm["accepted_classifier"] == {"k": 1, "n": 1, "rate": 1.0}  # Table 6 as the paper computed it
    assert set(m["cw"]) == {"0", "0.1", "5"}
    assert m["cw"]["0"]["n"] == 1 and rate(m["cw"]["0"]["detect"]) == 1.0  # the failed example is not counted
    assert rate(m["cw"]["0.1"]["detect"]) == 0.0 and rate(m["cw"]["0.1"]["system"]) == 0.0
    assert m["cw"]["5"]["n"] == 0 and m["cw"]["5"]["detect"] == {"k": 0, "n": 0, "rate": None}
    assert m["cw"]["5"]["auc"] is None
    assert set(m["other_divergences"]) == {"reverse", "js"}
    json.dumps(m)  # plain JSON types only


def test_cdf_downsampled_and_monotone():
    values = np.random.default_rng(0).exponential(size=5000)
    points, cdf = empirical_cdf(values, max_points=200)
    assert len(points) <= 200 and points[0] == values.min() and points[-1] == values.max()
    assert (np.diff(points) >= 0).all() and (np.diff(cdf) >= 0).all() and cdf[-1] == 1.0
    rows = cdf_rows(_synthetic_scores())
    assert {r["set"] for r in rows} == {"normal", "igsm-5", "cw-0", "cw-0.1"}  # cw-5 has no success


# ---------------------------------------------------------------- models, the tool and the stage


def _checkpoint_free_model(seed):
    torch.manual_seed(seed)
    return build_model(ModelConfig()).eval()


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    model = build_model(ModelConfig())
    save_checkpoint(path, model, meta={"seed": seed})
    return model.eval()


@pytest.fixture
def checkpoints(tmp_path):
    models = tmp_path / "models"
    _checkpoint(models / "unsanitized.pt", 0)
    _checkpoint(models / "sanitized.pt", 1)
    return models / "unsanitized.pt", models / "sanitized.pt"


def test_identical_models_give_zero_kl():
    model = _checkpoint_free_model(2)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 1, 28, 28), dtype=np.uint8)
    logits = predict_logits(model, images, device=torch.device("cpu"))
    for kind in DIVERGENCES:
        np.testing.assert_allclose(divergence(logits, logits.clone(), kind=kind), 0.0, atol=1e-15)


def test_check_images(tmp_path, checkpoints):
    rng = np.random.default_rng(0)
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(folder / "a_digit.png")
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), "RGB").save(folder / "b_big.png")
    good = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    np.save(folder / "c_digit.npy", good)
    (folder / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    np.save(folder / "e_wrong_shape.npy", np.zeros((3, 28, 28), np.float32))
    np.save(folder / "f_float.npy", good[None] / 255.0)
    unsanitized, sanitized = checkpoints
    rows = check_images(
        [folder, tmp_path / "missing.png"], unsanitized=unsanitized, sanitized=sanitized, threshold=1e-4
    )
    assert [Path(r["path"]).name for r in rows] == [
        "a_digit.png", "b_big.png", "c_digit.npy", "d_corrupt.png", "e_wrong_shape.npy", "f_float.npy", "missing.png"
    ]
    by_name = {Path(r["path"]).name: r for r in rows}
    for name in ("a_digit.png", "b_big.png", "c_digit.npy", "f_float.npy"):
        row = by_name[name]
        assert row["error"] is None and row["pred"] in range(10)
        assert row["decision"] == ("ACCEPT" if row["divergence"] <= 1e-4 else "REJECT")
    assert by_name["d_corrupt.png"]["decision"] == "ERROR" and "not a readable PNG" in by_name["d_corrupt.png"]["error"]
    assert "expected shape (1, 28, 28) or (28, 28), got (3, 28, 28)" in by_name["e_wrong_shape.npy"]["error"]
    assert by_name["missing.png"]["error"] == "file not found"
    # the .npy file gives the score of the models on the same pixels (uint8 and float alike)
    u = _checkpoint_free_model(0)
    s = _checkpoint_free_model(1)
    x = good[None, None]
    expected = divergence(predict_logits(u, x, device="cpu"), predict_logits(s, x, device="cpu"))[0]
    assert by_name["c_digit.npy"]["divergence"] == pytest.approx(expected, rel=1e-5)  # float32 batch order
    assert by_name["f_float.npy"]["divergence"] == pytest.approx(expected, rel=1e-5)


def _fake_inputs(tmp_path, channels=1):
    rng = np.random.default_rng(0)
    n_val, n_test = 30, 40

    def images(n):
        return rng.integers(0, 256, size=(n, channels, 28, 28), dtype=np.uint8)

    data = {
        "val_x": images(n_val), "val_y": rng.integers(0, 10, n_val),
        "test_x": images(n_test), "test_y": rng.integers(0, 10, n_test),
        "train_x": images(50), "train_y": np.arange(50) % 10,
    }
    igsm_index, cw_index = np.arange(6), np.array([6, 6, 6, 7, 7, 7])
    attacks = {
        "igsm_index": igsm_index, "igsm_y": data["test_y"][igsm_index],
        "cw_index": cw_index, "cw_source": data["test_y"][cw_index], "cw_target": (data["test_y"][cw_index] + 1) % 10,
        "cw_kappa": np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.1]), "cw_success": np.array([1, 1, 0, 1, 1, 0], bool),
        "cw_adv": rng.random((6, channels, 28, 28), dtype=np.float32), "cw_l2": rng.random(6, dtype=np.float32),
    }
    for k in (5, 10):
        attacks[f"igsm_adv_{k}"] = rng.random((6, channels, 28, 28), dtype=np.float32)
        attacks[f"igsm_pred_{k}"] = rng.integers(0, 10, 6)
    return data, attacks


def test_score_attacks_checks_labels_against_dataset(tmp_path):
    data, attacks = _fake_inputs(tmp_path)
    attacks["igsm_y"] = (attacks["igsm_y"] + 1) % 10
    model = _checkpoint_free_model(0)
    with pytest.raises(ValueError, match="igsm_y disagrees with test_y"):
        score_attacks(data, attacks, unsanitized=model, sanitized=model, device="cpu")


def test_stage_end_to_end(tmp_path, checkpoints):
    from cull.artifacts import load_npz, save_npz

    data, attacks = _fake_inputs(tmp_path)
    save_npz(tmp_path / "data" / "dataset.npz", **data)
    save_npz(tmp_path / "data" / "attacks" / "sanitized.npz", **attacks)
    save_npz(tmp_path / "data" / "kept.npz", kept=np.arange(0, 50, 3), method=np.array("self"),
             threshold=np.array(0.9))
    (tmp_path / "params.yaml").write_text("base:\n  seed: 0\n  device: cpu\ndetect:\n  acceptance: 0.9\n  divergence: kl\n")
    unsanitized, sanitized = checkpoints
    out, metrics_path, cdf = tmp_path / "out.npz", tmp_path / "metrics" / "detect.json", tmp_path / "cdf.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "detect.py"), "--params", str(tmp_path / "params.yaml"),
         "--data", str(tmp_path / "data" / "dataset.npz"), "--unsanitized", str(unsanitized),
         "--sanitized", str(sanitized), "--attacks", str(tmp_path / "data" / "attacks" / "sanitized.npz"),
         "--kept", str(tmp_path / "data" / "kept.npz"),
         "--out", str(out), "--metrics", str(metrics_path), "--cdf", str(cdf)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("detect: kl tau=")

    m = json.loads(metrics_path.read_text())
    assert list(m) == ["divergence", "threshold", "normal", "igsm", "cw", "other_divergences", "baselines"]
    assert m["divergence"] == "kl" and m["threshold"] >= 0
    assert set(m["normal"]) == {"n_val", "n_test", "val_accept", "test_accept", "classifier", "system_acc"}
    assert m["normal"]["val_accept"] == {"k": 27, "n": 30, "rate": pytest.approx(0.9)}
    row_keys = {"n", "detect", "auc", "tpr_at_1fpr", "tpr_at_5fpr", "roc", "classifier", "system",
                "accepted_classifier"}
    assert set(m["igsm"]) == {"5", "10"} and all(set(r) == row_keys for r in m["igsm"].values())
    assert set(m["cw"]) == {"0", "0.1"} and all(set(r) == row_keys for r in m["cw"].values())
    assert m["cw"]["0"]["n"] == 2 and m["cw"]["0.1"]["n"] == 2  # successful only
    assert set(m["other_divergences"]) == {"reverse", "js"}
    assert set(m["other_divergences"]["js"]["igsm"]["5"]) == row_keys - {"classifier", "system", "accepted_classifier"}
    # the baselines (default: both) are calibrated alike and scored on the same rows
    assert set(m["baselines"]) == {"squeeze", "mahalanobis"}
    assert m["baselines"]["squeeze"]["settings"] == {"bits": 1, "median": 2}
    for name, d in m["baselines"].items():
        assert d["val_accept"]["n"] == 30 and d["val_accept"]["rate"] >= 0.9
        assert {k: r["n"] for k, r in d["cw"].items()} == {"0": 2, "0.1": 2}
        assert set(d["igsm"]["10"]) == row_keys - {"classifier", "system", "accepted_classifier"}
        assert len(d["igsm"]["10"]["roc"]) == len(ROC_FPRS)

    arrays = load_npz(out)
    for name in ("val", "test", "igsm_5", "igsm_10", "cw"):
        for kind in (*DIVERGENCES, "squeeze", "mahalanobis"):
            assert np.isfinite(arrays[f"{name}_{kind}"]).all()
    assert len(arrays["cw_kl"]) == len(arrays["cw_kappa"]) == 6
    with open(cdf, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["set", "divergence", "value", "cdf"]
    assert {r["set"] for r in rows} == {"normal", "igsm-5", "igsm-10", "cw-0", "cw-0.1"}


def test_compare_detectors_ranks_by_mean_auc_and_pairs_by_seed():
    from cull.aggregate import compare_detectors

    def rows(*aucs):  # IGSM 5, IGSM 10, C&W 0 (None: no successful example)
        return {"igsm": {"5": {"auc": aucs[0]}, "10": {"auc": aucs[1]}}, "cw": {"0": {"auc": aucs[2]}}}

    seeds = [{"divergence": "kl", **rows(0.8, 0.9, None), "other_divergences": {"js": rows(0.7, 0.8, None)},
              "baselines": {"squeeze": rows(0.9, 1.0, None)}},
             {"divergence": "kl", **rows(0.6, 0.8, 1.0), "other_divergences": {"js": rows(0.5, 0.5, 0.5)},
              "baselines": {"squeeze": rows(0.7, 0.9, 0.8)}}]
    control = [rows(0.5, 0.6, 0.7), rows(0.5, 0.5, None)]
    out = compare_detectors(seeds, control)
    assert out["names"] == ["kl", "js", "squeeze", "two-seed"] and out["paper"] == "kl"
    assert out["mean_auc"]["kl"]["per_seed"] == pytest.approx([0.85, 0.8])  # settings with examples only
    assert out["mean_auc"]["two-seed"]["per_seed"] == pytest.approx([0.6, 0.5])
    assert out["mean_auc"]["squeeze"]["interval"] == "t" and out["mean_auc"]["squeeze"]["seeds"] == 2
    assert out["best"] == "squeeze"
    assert out["best_minus"]["kl"]["per_seed"] == pytest.approx([0.1, 0.0])
    assert out["kl_minus"]["two-seed"]["per_seed"] == pytest.approx([0.25, 0.3])
    assert "kl" not in out["kl_minus"] and "squeeze" not in out["best_minus"]
    assert compare_detectors(seeds[:1])["names"] == ["kl", "js", "squeeze"]  # one seed: no control
