"""IGSM and C&W on models with known answers: a tiny CNN trained here and linear models."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import CLASSES, SIDE, small_cnn, synthetic

from cull.attacks import cw_l2, igsm, target_margin
from cull.attacks.cw import l2_search
from cull.attacks.run import choose, cw_rows, tally
from cull.models import CWNet, ModelConfig, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(0, *synthetic(512, seed=1))


@pytest.fixture(scope="module")
def test_set(cnn):
    x, y = synthetic(200, seed=2)
    with torch.no_grad():
        assert (cnn(x).argmax(1) == y).float().mean() > 0.97
    return x, y


def two_class_linear(d=16, seed=0):
    """nn.Linear on 4x4 images where class 1 - class 0 has weights v and clean margin Z0 - Z1 = 0.5.

    The minimal L2 perturbation to class 1 is delta* = 0.5 v / ||v||^2. Two pixels
    sit at exactly 0 where v > 0 and two at exactly 1 where v < 0, so the optimum
    moves them inward, and x + delta* stays inside (0, 1): the box does not bind.
    """
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    x = 0.5 + 0.15 * torch.rand(d, generator=g)
    order = v.argsort()
    x[order[:2]], x[order[-2:]] = 1.0, 0.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1] = v
        model[1].bias.zero_()
        model[1].bias[1] = -(v @ x) - 0.5
    delta = 0.5 * v / v.norm() ** 2
    assert 0 < (x + delta).min() and (x + delta).max() < 1
    return model.eval(), x.view(1, 1, 4, 4), v, delta


@pytest.fixture(scope="module")
def linear_result():
    model, x, v, delta = two_class_linear()
    kappa = torch.tensor([0.0, 1.0])
    res = cw_l2(model, x.repeat(2, 1, 1, 1), torch.tensor([0, 0]), torch.tensor([1, 1]), kappa=kappa)
    return model, x, v, delta, kappa, res


# ---------------------------------------------------------------- IGSM


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_igsm_stays_in_eps_ball_and_box(cnn, test_set, eps):
    x, y = test_set
    out = igsm(cnn, x, y, eps=eps, alpha=0.02, iterations=(5, 15))
    assert sorted(out) == [5, 15]
    for adv in out.values():
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1


def test_igsm_eps_zero_returns_input(cnn, test_set):
    x, y = test_set
    out = igsm(cnn, x, y, eps=0.0, iterations=(3,))
    assert torch.equal(out[3], x)


def test_igsm_defaults_cut_accuracy(cnn, test_set):
    x, y = test_set
    out = igsm(cnn, x, y)
    acc = {k: (cnn(adv).argmax(1) == y).float().mean().item() for k, adv in out.items()}
    assert sorted(acc) == [5, 10, 15]
    assert acc[15] <= 0.1 and acc[15] <= acc[5]


def test_igsm_step_is_the_sign_of_the_cross_entropy_gradient(cnn):
    x = 0.1 + 0.8 * torch.rand(8, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    y = torch.arange(8) % CLASSES
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(cnn(xg), y, reduction="sum"), xg)
    step = igsm(cnn, x, y, eps=1.0, alpha=0.05, iterations=(1,))[1] - x
    assert torch.allclose(step, 0.05 * grad.sign(), atol=1e-6)


def test_igsm_snapshots_equal_shorter_runs(cnn, test_set):
    x, y = test_set[0][:20], test_set[1][:20]
    assert torch.equal(igsm(cnn, x, y, iterations=(5,))[5], igsm(cnn, x, y, iterations=(5, 15))[5])


def test_attacks_leave_the_model_alone(cnn, test_set):
    x, y = test_set[0][:4], test_set[1][:4]
    before = [p.detach().clone() for p in cnn.parameters()]
    igsm(cnn, x, y, iterations=(2,))
    cw_l2(cnn, x, y, (y + 1) % CLASSES, steps=5, search_steps=2)
    assert not cnn.training
    for p, q in zip(cnn.parameters(), before):
        assert p.grad is None and p.requires_grad and torch.equal(p, q)


# ---------------------------------------------------------------- C&W


def test_margin_with_all_negative_logits():
    logits = torch.tensor([[-5.0, -1.0, -3.0], [-5.0, -1.0, -3.0], [-2.0, -7.0, -9.0]])
    margin = target_margin(logits, torch.tensor([0, 1, 0]))
    # Multiplying by a zeroed one-hot would give -5 - 0 = -5 for the first row.
    assert torch.allclose(margin, torch.tensor([-4.0, 2.0, 5.0]))


def test_cw_linear_reaches_the_closed_form_minimum(linear_result):
    model, x, v, delta, kappa, res = linear_result
    assert res.success.all()
    expected = (0.5 + kappa) / v.norm()  # distance to the hyperplane Z1 - Z0 = kappa
    assert torch.all((res.l2 - expected).abs() <= 0.05 * expected), (res.l2, expected)
    margin = target_margin(model(res.images), torch.tensor([1, 1]))
    assert torch.all(margin >= kappa)
    assert torch.allclose(res.l2, (res.images - x).flatten(1).norm(dim=1))


def test_cw_moves_pixels_at_exactly_0_and_1(linear_result):
    model, x, v, delta, kappa, res = linear_result
    flat, moved = x.flatten(), (res.images[0] - x[0]).flatten()
    edge = (flat == 0) | (flat == 1)
    assert edge.sum() == 4
    # The optimum moves them by delta* (>= 0.04 inward): each must move at least half of that.
    assert torch.all(moved[edge] * delta[edge].sign() >= 0.5 * delta[edge].abs())


def test_cw_small_cnn_succeeds_and_kappa_costs_distance(cnn, test_set):
    x, y = test_set[0][:4].repeat_interleave(2, 0), test_set[1][:4].repeat_interleave(2, 0)
    targets = (y + 1) % CLASSES
    kappa = torch.tensor([0.0, 2.0]).repeat(4)
    assert torch.equal(cnn(x).argmax(1), y)
    res = cw_l2(cnn, x, y, targets, kappa=kappa, steps=200, search_steps=6)
    assert res.success.all()
    logits = cnn(res.images)
    assert torch.equal(logits.argmax(1), targets)
    assert torch.all(target_margin(logits, targets) >= kappa)
    assert res.images.min() >= 0 and res.images.max() <= 1
    low, high = res.l2[0::2], res.l2[1::2]
    assert torch.all(high > low) and high.mean() > 1.1 * low.mean()


def test_cw_flags_examples_it_cannot_fool():
    # Logits ignore the input and always favour class 0: no target is reachable.
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    model.eval()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    res = cw_l2(model, x, torch.tensor([0, 0, 0]), torch.tensor([1, 2, 1]), kappa=0.5, steps=50, search_steps=3)
    assert not res.success.any()
    assert torch.isnan(res.l2).all()
    assert torch.equal(res.images, x)


def test_cw_bfloat16_search_judges_success_in_float32(cnn, test_set):
    x, y = test_set[0][:8], test_set[1][:8]
    targets = (y + 1) % CLASSES
    full = cw_l2(cnn, x, y, targets, steps=200, search_steps=6)
    half = cw_l2(cnn, x, y, targets, steps=200, search_steps=6, precision="bfloat16")
    assert full.success.all() and half.success.all()
    logits = cnn(half.images)  # float32
    assert torch.equal(logits.argmax(1), targets) and torch.all(target_margin(logits, targets) >= 0)
    assert abs(half.l2.mean() / full.l2.mean() - 1) < 0.05


def test_search_keeps_only_confirmed_iterates(cnn, test_set):
    # The objective says every iterate meets the goal; the float32 check says none does.
    x, y = test_set[0][:3], test_set[1][:3]
    targets = (y + 1) % CLASSES

    def objective(adv, targets):
        return -target_margin(cnn(adv), targets), torch.ones(len(adv), dtype=torch.bool)

    def never(adv, targets):
        return torch.zeros(len(adv), dtype=torch.bool)

    kwargs = {"initial_c": 1.0, "steps": 20, "search_steps": 2, "lr": 0.01, "abort_early": True,
              "on_search_step": None}
    best, best_l2sq = l2_search(objective, x, (targets,), **kwargs)
    assert torch.isfinite(best_l2sq).all()  # unconfirmed: the hint is taken at its word
    best, best_l2sq = l2_search(objective, x, (targets,), confirm=never, **kwargs)
    assert torch.isinf(best_l2sq).all() and torch.equal(best, x)


class CountingModel(nn.Module):
    """Wraps a model and counts the rows it is asked to classify (eval mode, no params of its own)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows, self.training = model, 0, False

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)


def test_cw_search_tolerance_skips_settled_search_steps(cnn, test_set):
    x, y = test_set[0][:6], test_set[1][:6]
    targets = (y + 1) % CLASSES
    work, l2 = {}, {}
    for tolerance in (0.0, 0.3, 0.95):
        counting = CountingModel(cnn)
        res = cw_l2(counting, x, y, targets, steps=100, search_steps=10, search_tolerance=tolerance)
        assert res.success.all()
        work[tolerance], l2[tolerance] = counting.rows, res.l2
    assert work[0.95] < work[0.3] < work[0.0]
    # Examples stop once the bracket on c is tight, so they lose little; at 0.95 they stop at the first success.
    assert torch.all(l2[0.3] <= 1.1 * l2[0.0]) and l2[0.3].mean() <= 1.03 * l2[0.0].mean()
    assert l2[0.95].mean() > l2[0.3].mean()


def test_cw_is_deterministic():
    model, x, _, _ = two_class_linear(seed=1)
    runs = [cw_l2(model, x, torch.tensor([0]), torch.tensor([1]), steps=200, search_steps=5) for _ in range(2)]
    assert runs[0].success.all()
    assert torch.equal(runs[0].images, runs[1].images) and torch.equal(runs[0].l2, runs[1].l2)


# ---------------------------------------------------------------- validation


def _bad_calls(model, x, y):
    t = (y + 1) % CLASSES
    return {
        "igsm 3-d images": (lambda: igsm(model, x[:, 0], y), r"expected shape \(N, C, H, W\)"),
        "igsm labels length": (lambda: igsm(model, x, y[:-1]), r"labels: expected shape \(4,\)"),
        "igsm pixel above 1": (lambda: igsm(model, x * 3, y), r"pixel values in \[0, 1\]"),
        "igsm pixel below 0": (lambda: igsm(model, x - 1, y), r"pixel values in \[0, 1\]"),
        "igsm eps": (lambda: igsm(model, x, y, eps=2.0), r"eps: expected a value in \[0, 1\], got 2.0"),
        "igsm iterations": (lambda: igsm(model, x, y, iterations=(0, 5)), "iterations: expected positive"),
        "igsm class": (lambda: igsm(model, x, y + CLASSES), "model has 4 classes, found class"),
        "cw 3-d images": (lambda: cw_l2(model, x[:, 0], y, t), r"expected shape \(N, C, H, W\)"),
        "cw pixel above 1": (lambda: cw_l2(model, x + 1, y, t), r"pixel values in \[0, 1\]"),
        "cw target == label": (lambda: cw_l2(model, x, y, y), "target equals the true label at index 0"),
        "cw targets length": (lambda: cw_l2(model, x, y, t[:2]), r"targets: expected shape \(4,\)"),
        "cw kappa shape": (
            lambda: cw_l2(model, x, y, t, kappa=torch.zeros(3)), r"kappa: expected a float or shape \(4,\)"
        ),
        "cw kappa negative": (lambda: cw_l2(model, x, y, t, kappa=-1.0), "kappa: expected values >= 0"),
        "cw steps": (lambda: cw_l2(model, x, y, t, steps=0), "steps and search_steps: expected >= 1"),
        "cw tolerance": (
            lambda: cw_l2(model, x, y, t, search_tolerance=1.0), r"search_tolerance: expected a value in \[0, 1\)"
        ),
        "cw precision": (
            lambda: cw_l2(model, x, y, t, precision="float16"), "precision: expected one of float32, bfloat16"
        ),
    }


@pytest.mark.parametrize("case", list(_bad_calls(None, torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long))))
def test_validation_errors(cnn, test_set, case):
    call, match = _bad_calls(cnn, test_set[0][:4], test_set[1][:4])[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_model_in_training_mode_is_rejected(cnn, test_set):
    x, y = test_set[0][:2], test_set[1][:2]
    cnn.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            igsm(cnn, x, y)
        with pytest.raises(ValueError, match="training mode"):
            cw_l2(cnn, x, y, (y + 1) % CLASSES)
    finally:
        cnn.eval()


# ---------------------------------------------------------------- dataset helpers and stage


def test_choose_is_seeded_nested_and_checked():
    a = choose(np.arange(100), 10, seed=0, stream=0, what="igsm.n")
    assert np.array_equal(a, choose(np.arange(100), 10, seed=0, stream=0, what="igsm.n"))
    assert set(a) <= set(choose(np.arange(100), 20, seed=0, stream=0, what="igsm.n"))
    assert not np.array_equal(a, choose(np.arange(100), 10, seed=1, stream=0, what="igsm.n"))
    with pytest.raises(ValueError, match="cw.n: asked for 5 images, only 3 available"):
        choose(np.arange(3), 5, seed=0, stream=1, what="cw.n")


def test_cw_rows_and_tally():
    rows = cw_rows(np.array([7, 9]), np.array([2, 0]), [0, 0.5], num_classes=10)
    assert len(rows["cw_index"]) == 2 * 9 * 2
    assert not np.any(rows["cw_target"] == rows["cw_source"])
    m = len(rows["cw_index"])
    success = np.arange(m) % 4 != 0
    arrays = {
        **rows,
        "cw_success": success,
        "cw_l2": np.where(success, rows["cw_kappa"] + 1.0, np.nan),
        "igsm_y": np.array([1, 2, 3, 4]),
        "igsm_clean_pred": np.array([1, 2, 3, 0]),
        "igsm_pred_5": np.array([1, 0, 0, 0]),
    }
    metrics = tally(arrays, iterations=[5], kappas=[0, 0.5])
    assert metrics["clean_acc"] == {"k": 3, "n": 4, "rate": 0.75}
    assert metrics["igsm"] == {"5": {"acc": {"k": 1, "n": 4, "rate": 0.25}}}
    assert metrics["cw"]["0"] == {"success_rate": {"k": 9, "n": 18, "rate": 0.5},
                                  "mean_l2": {"mean": 1.0, "n": 9, "values": [1.0] * 9}}
    assert metrics["cw"]["0.5"] == {"success_rate": {"k": 18, "n": 18, "rate": 1.0},
                                    "mean_l2": {"mean": 1.5, "n": 18, "values": [1.5] * 18}}
    assert metrics["n_igsm"] == 4 and metrics["n_cw"] == 2


def test_stage_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = CWNet(ModelConfig()).eval()
    save_checkpoint(tmp_path / "m.pt", model, meta={})
    test_x = (np.random.default_rng(0).random((12, 1, 28, 28)) * 255).astype(np.uint8)
    with torch.no_grad():  # label the images as the model does, so every one is correctly classified
        test_y = model(torch.from_numpy(test_x).float() / 255).argmax(1).numpy()
    np.savez(tmp_path / "d.npz", test_x=test_x, test_y=test_y)
    (tmp_path / "p.yaml").write_text(
        "base: {seed: 0, device: cpu}\n"
        "igsm: {eps: 0.3, alpha: 0.02, iterations: [1, 2], n: 5}\n"
        "cw: {n: 1, kappas: [0, 0.5], steps: 4, search_steps: 2, lr: 0.01, initial_c: 0.001}\n"
    )
    args = ["--params", "p.yaml", "--seed", "0", "--model", "m.pt", "--data", "d.npz", "--out", "a/o.npz",
            "--metrics", "a/m.json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "stages/attack.py"), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1 and "clean acc" in run.stdout
    out = np.load(tmp_path / "a/o.npz")
    assert out["igsm_adv_2"].shape == (5, 1, 28, 28) and out["igsm_adv_2"].dtype == np.float32
    assert out["cw_adv"].shape == (18, 1, 28, 28) and not np.isnan(out["cw_adv"]).any()
    assert np.array_equal(np.isnan(out["cw_l2"]), ~out["cw_success"])
    for key in ("igsm_index", "igsm_y", "igsm_pred_1", "cw_index", "cw_source", "cw_target", "cw_kappa"):
        assert key in out.files
    metrics = json.loads((tmp_path / "a/m.json").read_text())
    assert set(metrics["igsm"]) == {"1", "2"} and set(metrics["cw"]) == {"0", "0.5"}
    assert metrics["clean_acc"] == {"k": 5, "n": 5, "rate": 1.0} and metrics["n_igsm"] == 5 and metrics["n_cw"] == 1
    for row in metrics["cw"].values():  # a sample of the successful rows' L2, and a count of the rows
        assert row["mean_l2"]["n"] == row["success_rate"]["k"] and row["success_rate"]["n"] == 9



def test_stage_turns_errors_into_one_line(tmp_path):
    (tmp_path / "p.yaml").write_text("igsm: {eps: 2.0}\n")
    args = ["--params", str(tmp_path / "p.yaml"), "--seed", "0", "--model", "m.pt", "--data", "d.npz",
            "--out", "o.npz", "--metrics", "m.json"]
    result = subprocess.run([sys.executable, str(ROOT / "stages/attack.py"), *args],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert re.fullmatch(r"error: .*p.yaml: igsm.eps: expected a value in \[0.0, 1.0\], got 2.0\n", result.stderr)
