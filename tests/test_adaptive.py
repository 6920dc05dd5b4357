"""The adaptive attacks on the detector + classifier system: tiny model pairs with known answers."""
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

from cull import params
from cull.attacks.adaptive import AdaptiveCW, adaptive_l2, evaluate, system_outcome
from cull.attacks.cw import CW, cw_l2
from cull.attacks.targets import DetectorSystem, KLDetector, MahalanobisDetector, SqueezeDetector, SumLogits, threat_target
from cull.detection import calibrate_threshold, divergence
from cull.detectors import feature_squeezing_score, fit_class_gaussians, mahalanobis_score, penultimate_features
from cull.models import CWNet, ModelConfig, save_checkpoint
from cull.params import ParamsError
from cull.schema import check_threat_result, systems_of

ROOT = Path(__file__).resolve().parents[1]
FAST = {"steps": 200, "search_steps": 6, "lr": 0.05, "initial_c": 0.1}  # enough for 12x12 nets
MARGIN = 2e-4  # margin: tau is about 1.3e-3 here


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair():
    """(unsanitized, sanitized): the same net trained from two seeds on two halves of the data."""
    x, y = synthetic(512, seed=1)
    return small_cnn(0, x[:256], y[:256]), small_cnn(1, x[256:], y[256:])


@pytest.fixture(scope="module")
def setting(pair):
    """8 test images both models classify right, targets, and tau for 90% acceptance of 200 normals."""
    u, s = pair
    xv, _ = synthetic(200, seed=2)
    with torch.no_grad():
        tau = calibrate_threshold(divergence(u(xv), s(xv)), acceptance=0.9)
        x, y = synthetic(40, seed=3)
        right = (u(x).argmax(1) == y) & (s(x).argmax(1) == y)
    x, y = x[right][:8], y[right][:8]
    assert len(y) == 8
    return x, y, (y + 1) % CLASSES, tau


def kl_system(u, s, tau, kind="kl"):
    return DetectorSystem(s, KLDetector(u, s, kind), tau)


def adaptive(system, x, y, t, **settings):
    """The adaptive C&W on `system`, scored against it."""
    return evaluate(system, adaptive_l2(system, x, y, t, **settings), t)


SUM = params.ThreatModel("sum-kl", "adaptive", "sum", "kl")


def summed(system, x, y, t, **settings):
    """Plain C&W on the summed logits of the system's two models (threat model sum-kl), scored against it."""
    return evaluate(system, cw_l2(threat_target(SUM, system), x, y, t, **settings), t)


def scores(u, s, images):
    with torch.no_grad():
        z_u, z_s = u(images), s(images)
    return divergence(z_u, z_s), z_s.argmax(1), z_u.argmax(1)


def test_hinge_keeps_the_divergence_below_tau(pair, setting):
    u, s = pair
    x, y, t, tau = setting
    oblivious = cw_l2(s, x, y, t, **FAST)
    res = adaptive(kl_system(u, s, tau), x, y, t, margin=MARGIN, **FAST)
    assert res.success.float().mean() >= 0.75
    d, san, unsan = scores(u, s, res.images)  # recomputed as the detector does, in a fresh batch
    ok = res.success.numpy()
    assert (d[ok] <= tau).all() and (san[res.success] == t[res.success]).all()
    assert (unsan[res.success] == t[res.success]).all()  # the attacker's own goal
    np.testing.assert_allclose(res.score.numpy(), d, rtol=1e-6, atol=1e-12)
    assert torch.equal(res.l2.isnan(), ~res.found)
    # the oblivious examples are rejected: without the hinge the two models disagree
    d_obl, _, _ = scores(u, s, oblivious.images)
    assert oblivious.success.all() and (d_obl > tau).mean() >= 0.75
    # the price: more distortion than fooling the sanitized model alone
    assert res.l2[res.success].mean() > oblivious.l2[res.success].mean()


def test_higher_kappa_costs_distance_and_still_meets_the_margin(pair, setting):
    u, s = pair
    x, y, t, tau = setting
    kappa = torch.tensor([0.0] * 4 + [3.0] * 4)
    res = adaptive(kl_system(u, s, tau), x, y, t, kappa=kappa, margin=MARGIN, **FAST)
    assert res.success.all()
    with torch.no_grad():
        for model in (u, s):
            logits = model(res.images)
            margin = logits.gather(1, t[:, None])[:, 0] - logits.masked_fill(
                nn.functional.one_hot(t, CLASSES).bool(), float("-inf")).amax(1)
            assert (margin >= kappa - 1e-4).all()


def logits(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_success_needs_found_accepted_and_the_target():
    z_u = logits([0, 5], [0, 5], [5, 0], [0, 5])
    z_s = logits([0, 5], [0, 5], [5, 0], [0, 1])
    u, s = Rows(z_u), Rows(z_s)
    targets = torch.tensor([1, 1, 1, 1])
    found = torch.tensor([True, False, True, True])
    out = system_outcome(kl_system(u, s, 0.1), torch.arange(4.0), targets, found)
    # all three hold | not found | accepted (KL 0) but S says 0 | S says 1 but KL 0.28 > tau: rejected
    assert out["success"].tolist() == [True, False, False, False]
    assert out["accepted"].tolist() == [True, True, True, False]
    assert out["pred"].tolist() == [1, 1, 0, 1]
    assert out["score"].dtype == torch.float64
    np.testing.assert_allclose(out["score"].numpy(), divergence(z_u, z_s))


class Rows(nn.Module):
    """A 'model' that returns fixed logits, row i for input i (inputs are the row numbers)."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.training = False

    def forward(self, x):
        return self.table[x.long()]


class FixedScore(nn.Module):
    """A detector whose score of input i is scores[i]; it watches nothing beyond the classifier."""

    watched = ()

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.tensor(scores, dtype=torch.float64)

    def forward(self, x, logits=None):
        return self.scores[x.long()]

    def exact(self, x):
        return self.scores[x.long()].numpy()

    hinge = staticmethod(KLDetector.hinge)


def test_a_detector_system_counts_success_only_when_accepted_and_the_target():
    classifier = Rows(logits([0, 5], [0, 5], [5, 0], [5, 0]))
    system = DetectorSystem(classifier, FixedScore([0.1, 0.9, 0.1, 0.9]), 0.5)
    assert system.watched == (classifier,)
    torch.testing.assert_close(system(torch.arange(4.0)), classifier.table)
    out = system_outcome(system, torch.arange(4.0), torch.ones(4, dtype=torch.long), torch.ones(4, dtype=bool))
    # accepted and target | rejected | accepted, wrong class | rejected, wrong class
    assert out["success"].tolist() == [True, False, False, False]
    assert out["accepted"].tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="threshold: expected a finite score >= 0"):
        DetectorSystem(classifier, FixedScore([0.0]), float("inf"))


def constant(bias):
    """A 2-class model on 4x4 images that ignores its input: logits = bias."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return model.eval()


@pytest.mark.parametrize("u_bias, s_bias, tau, found, success", [
    ([0, 100], [5, 0], 1e6, True, False),  # the sum says 1, S still says 0: not fooled
    ([0, 100], [0, 1], 0.1, True, False),  # S says 1 but D = 0.31 > tau: rejected
    ([0, 100], [0, 1], 10.0, True, True),  # S says 1 and accepted
])
def test_sum_variant_uses_the_same_rule(u_bias, s_bias, tau, found, success):
    u, s = constant(u_bias), constant(s_bias)
    x = torch.full((2, 1, 4, 4), 0.5)
    labels, targets = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    res = summed(kl_system(u, s, tau), x, labels, targets, steps=5, search_steps=1)
    assert res.found.tolist() == [found] * 2 and res.success.tolist() == [success] * 2
    if not success:  # the adaptive attacker cannot do it either: S never moves, or D never falls
        res = adaptive(kl_system(u, s, tau), x, labels, targets, steps=5, search_steps=2)
        assert not res.found.any() and not res.success.any()
        assert torch.equal(res.images, x) and res.l2.isnan().all()


def test_sum_variant_on_trained_pair(pair, setting):
    u, s = pair
    x, y, t, tau = setting
    results = {}
    for kappa in (0.0, 20.0):
        res = results[kappa] = summed(kl_system(u, s, tau), x, y, t, kappa=kappa, **FAST)
        d, san, _ = scores(u, s, res.images)
        assert res.found.all()
        assert torch.equal(res.success, res.found & torch.from_numpy(d <= tau) & (san == t))
    low, high = results[0.0], results[20.0]
    assert high.score.max() < low.score.min()  # kappa 20 saturates both models: D collapses
    assert high.success.sum() > low.success.sum() and (high.l2 > low.l2).all()


def test_sum_logits_adds_and_leaves_modes_alone(pair):
    u, s = pair
    model = SumLogits(u, s)
    x, _ = synthetic(3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), u(x) + s(x))
    assert not model.training and not u.training and not s.training
    u.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            SumLogits(u, s)
    finally:
        u.eval()


def test_attack_configs_are_callable_on_any_target(pair, setting):
    """One call shape: a params section called on a target runs its attack with its own settings."""
    u, s = pair
    x, y, t, tau = setting
    system = kl_system(u, s, tau)
    cw = CW.of(params.Cw(steps=50, search_steps=2, lr=0.05, initial_c=0.1, precision="float32", search_tolerance=0.0))
    settings = {"steps": 50, "search_steps": 2, "lr": 0.05, "initial_c": 0.1}
    for a, b in ((cw(s, x, y, t), cw_l2(s, x, y, t, **settings)),
                 (AdaptiveCW(margin=MARGIN, **settings)(system, x, y, t),
                  adaptive_l2(system, x, y, t, margin=MARGIN, **settings)),
                 (AdaptiveCW(**settings)(SumLogits(u, s), x, y, t), cw_l2(SumLogits(u, s), x, y, t, **settings))):
        assert torch.equal(a.success, b.success) and torch.equal(a.images, b.images)
        torch.testing.assert_close(a.l2, b.l2, equal_nan=True)


def test_one_runner_scores_every_attack_against_its_system(pair, setting):
    from cull.attacks.adaptive_run import scored
    from cull.attacks.run import cw_rows, run_rows

    u, s = pair
    x, y, t, tau = setting
    images = (x[:2].numpy() * 255).round().astype(np.uint8)
    rows = cw_rows(np.arange(2), y[:2].numpy(), [0.0, 3.0], CLASSES)
    system = kl_system(u, s, tau)
    config = AdaptiveCW(margin=MARGIN, **FAST)
    for target in (system, SumLogits(u, s)):
        out = run_rows(config, target, images, rows, device="cpu", search_steps=FAST["search_steps"], desc="t",
                       score=lambda res, targets: scored(system, res, targets), also={"unsanitized": u}, batch=5)
        assert set(out) == {"adv", "found", "success", "l2", "score", "accepted", "pred", "unsanitized_pred"}
        assert len(out["found"]) == len(rows["cw_index"]) == 2 * (CLASSES - 1) * 2
        d, san, unsan = scores(u, s, torch.from_numpy(out["adv"]))
        np.testing.assert_allclose(out["score"], d, rtol=1e-4, atol=1e-9)  # batches of 5 vs one: float noise
        assert np.array_equal(out["accepted"], out["score"] <= tau)
        assert np.array_equal(out["success"], out["found"] & out["accepted"] & (san.numpy() == rows["cw_target"]))
        assert np.array_equal(out["unsanitized_pred"], unsan.numpy())
        assert np.array_equal(np.isnan(out["l2"]), ~out["found"])


def test_threat_models_in_params_are_named_triples(tmp_path):
    table = params.load(ROOT / "params.yaml", "threat_models")["threat_models"]
    assert [t.name for t in table] == list(params.DEFAULT_THREAT_MODELS)  # defaults live in one place
    assert {(t.attack, t.target, t.detector) for t in table} == {
        (b["attack"], b["target"], b.get("detector")) for b in params.DEFAULT_THREAT_MODELS.values()}
    assert all(t.knows == params.TARGETS[t.target] for t in table)
    path = tmp_path / "params.yaml"
    for text, match in [
        ("threat_models: {x: {attack: cw, target: classifier}}\n", r"threat_models.x: the attack on the classifier "
         r"alone is the attack stage's C&W; name it 'oblivious' with attack cw"),
        ("threat_models: {s: {attack: adaptive, target: sum, detector: squeeze}}\n",
         r"threat_models.s.detector: summed logits need a divergence's two models, got 'squeeze'"),
        ("threat_models: {a: {attack: adaptive, target: system, detector: kl}, "
         "b: {attack: adaptive, target: system, detector: kl}}\n",
         r"threat_models.b: another threat model attacks the same system of kl; a threat model runs once"),
        ("threat_models: {a: {attack: adaptive, target: sytem, detector: kl}}\n",
         r"threat_models.a.target: expected one of classifier, sum, system, got 'sytem'"),
        ("threat_models: {a: {attack: adaptive, target: system, detector: squeze}}\n",
         r"threat_models.a.detector: expected one of kl, reverse, js, squeeze, mahalanobis, got 'squeze'"),
        ("threat_models: {a: {attack: cw, target: system, detector: kl}}\n",
         r"threat_models.a.attack: the system is attacked with the adaptive settings; expected adaptive"),
        ("threat_models: {a: {attack: adaptive, target: system, detector: kl, knows: all}}\n",
         r"threat_models.a.knows: follows from the target; remove it"),
        ("threat_models: {a: 3}\n", r"threat_models.a: expected a mapping \{attack, target, detector\}, got 3"),
        ("threat_models: []\n", r"threat_models: expected a mapping of threat-model names"),
    ]:
        path.write_text(text)
        with pytest.raises(ParamsError, match=match):
            params.load(path, "threat_models")


@pytest.mark.parametrize("kwargs, match", [
    ({"margin": -0.5}, r"margin: expected >= 0, got -0.5"),
    ({"kappa": -1.0}, r"kappa: expected values >= 0"),
    ({"steps": 0}, r"steps and search_steps: expected >= 1"),
])
def test_adaptive_validation_errors(pair, setting, kwargs, match):
    u, s = pair
    x, y, t, _ = setting
    with pytest.raises(ValueError, match=match):
        adaptive_l2(kl_system(u, s, 0.1), x, y, t, **kwargs)


def test_system_validation_errors(pair, setting):
    u, s = pair
    x, y, t, _ = setting
    with pytest.raises(ValueError, match=r"threshold: expected a finite score >= 0, got -1.0"):
        kl_system(u, s, -1.0)
    with pytest.raises(ValueError, match=r"divergence: expected one of kl, reverse, js, got 'kld'"):
        KLDetector(u, s, "kld")
    with pytest.raises(TypeError, match="system: expected a cull.attacks.targets.DetectorSystem"):
        adaptive_l2(s, x, y, t)
    squeeze = DetectorSystem(s, SqueezeDetector(s), 0.1)
    with pytest.raises(ValueError, match="threat_models.sum-kl: summed logits need a divergence detector's two "
                                         "models, got SqueezeDetector"):
        threat_target(SUM, squeeze)


def test_models_must_agree_on_classes(pair, setting):
    u, _ = pair
    x, y, t, _ = setting
    three = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3)).eval()
    with pytest.raises(ValueError, match=r"the watched models have \[4, 3\] classes"):
        adaptive_l2(kl_system(u, three, 0.1), x, y, t % 3)


@pytest.fixture(scope="module")
def baselines(pair):
    """The sanitized model's squeeze and Mahalanobis systems, tau at 90% acceptance of 200 normals."""
    _, s = pair
    xv, _ = synthetic(200, seed=2)
    xt, yt = synthetic(512, seed=1)
    fit = fit_class_gaussians(penultimate_features(s, xt[256:]), yt[256:].numpy(), num_classes=CLASSES)
    with torch.no_grad():
        squeeze = SqueezeDetector(s)
        mahalanobis = MahalanobisDetector(s, fit)
        return {name: DetectorSystem(s, d, calibrate_threshold(d.exact(xv), acceptance=0.9))
                for name, d in (("squeeze", squeeze), ("mahalanobis", mahalanobis))}


def test_baseline_scores_match_their_detectors(pair, baselines):
    _, s = pair
    x, _ = synthetic(16, seed=7)
    squeeze, mahalanobis = baselines["squeeze"].detector, baselines["mahalanobis"].detector
    np.testing.assert_allclose(squeeze.exact(x), feature_squeezing_score(s, x))
    with torch.no_grad():  # the differentiable score is the exact one (BPDA changes only the gradient)
        np.testing.assert_allclose(squeeze(x).numpy(), squeeze.exact(x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mahalanobis(x).numpy(), mahalanobis.exact(x), rtol=1e-6)
    np.testing.assert_allclose(mahalanobis.exact(x),
                               mahalanobis_score(mahalanobis.gaussians, penultimate_features(s, x)))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(squeeze(x).sum(), x)  # BPDA: the squeezers pass the gradient straight through
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["squeeze", "mahalanobis"])
def test_hinge_drives_each_baseline_score_below_tau(pair, setting, baselines, name):
    _, s = pair
    x, y, t, _ = setting
    system = baselines[name]
    oblivious = cw_l2(s, x, y, t, **FAST)
    rejected_before = ~system.accepts(oblivious.images)[0]
    res = adaptive(system, x, y, t, margin=1e-3, **FAST)
    assert res.success.float().mean() >= 0.75
    accepted, score = system.accepts(res.images)  # a fresh batch, the detector's own computation
    assert (score[res.success] <= system.threshold).all() and accepted[res.success].all()
    with torch.no_grad():
        assert (s(res.images).argmax(1)[res.success] == t[res.success]).all()
    assert (rejected_before & res.success).any()  # it gets past the detector where plain C&W was caught
    assert res.l2[res.success].mean() >= oblivious.l2[res.success].mean() - 1e-6


@pytest.mark.parametrize("text, match", [
    ("adaptive: {kappas: [0, -5]}\n", r"adaptive.kappas: expected non-negative confidences"),
    ("adaptive: {kappas: []}\n", r"adaptive.kappas: expected non-negative confidences, got \[\]"),
    ("adaptive: {margin: -0.1}\n", r"adaptive.margin: expected a value in \[0.0, 100.0\], got -0.1"),
    ("adaptive: {n: 0}\n", r"adaptive.n: expected a value in \[1, 100000\], got 0"),
    ("adaptive: {steps: 1.5}\n", r"adaptive.steps: expected int, got 1.5"),
    ("adaptive: {search_steps: 0}\n", r"adaptive.search_steps: expected a value in \[1, 100\]"),
    ("adaptive: {kl_margin: 0.1}\n", r"adaptive.kl_margin: unknown key \(valid keys: n, kappas"),
])
def test_params_validation(tmp_path, text, match):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=match):
        params.load(path, "adaptive")


def test_default_params_sweep_kappa_past_five():
    adaptive = params.load(ROOT / "params.yaml", "adaptive")["adaptive"]
    assert max(adaptive.kappas) > 5 and adaptive.n >= 1


# ---------------------------------------------------------------- the stage


def stage_inputs(tmp_path):
    """Two untrained CWNets (they disagree), 12 test images labelled as the sanitized net sees them,
    a detect JSON and an attacks archive with C&W rows for every test image."""
    nets = []
    for seed, name in ((0, "unsanitized"), (1, "sanitized")):
        torch.manual_seed(seed)
        nets.append(CWNet(ModelConfig()).eval())
        save_checkpoint(tmp_path / f"models/{name}.pt", nets[-1], meta={})
    rng = np.random.default_rng(0)
    test_x = (rng.random((12, 1, 28, 28)) * 255).astype(np.uint8)
    with torch.no_grad():
        test_y = nets[1](torch.from_numpy(test_x).float() / 255).argmax(1).numpy()
    np.savez(tmp_path / "dataset.npz", test_x=test_x, test_y=test_y)
    baselines = {"squeeze": {"settings": {"bits": 1, "median": 2}, "threshold": 0.05},
                 "mahalanobis": {"settings": {}, "threshold": 50.0}}
    (tmp_path / "detect.json").write_text(json.dumps({"divergence": "kl", "threshold": 1e-4, "normal": {},
                                                      "baselines": baselines}))
    fit = fit_class_gaussians(penultimate_features(nets[1], test_x), np.arange(12) % 10)
    np.savez(tmp_path / "detect.npz", mahalanobis_means=fit.means, mahalanobis_precision=fit.precision)
    index = np.repeat(np.arange(12), 9)
    target = np.array([t for y in test_y for t in range(10) if t != y])
    success = rng.random(len(index)) < 0.7
    np.savez(tmp_path / "attacks.npz", cw_index=index, cw_source=test_y[index], cw_target=target,
             cw_kappa=np.zeros(len(index)), cw_adv=rng.random((len(index), 1, 28, 28), dtype=np.float32),
             cw_success=success, cw_l2=np.where(success, 1.0, np.nan))
    (tmp_path / "params.yaml").write_text(
        "base: {seed: 0, device: cpu}\n"
        "adaptive: {n: 1, kappas: [0, 20], steps: 6, search_steps: 2, lr: 0.05, initial_c: 0.1, margin: 0.001}\n"
    )


def run_stage(tmp_path, *extra, detect="detect.json"):
    args = ["--params", "params.yaml", "--seed", "0", "--data", "dataset.npz", "--unsanitized", "models/unsanitized.pt",
            "--sanitized", "models/sanitized.pt", "--detect", detect, "--detect-scores", "detect.npz",
            "--out", "out/adaptive.npz",
            "--metrics", "m/threats", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "stages/attack_adaptive.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stage_end_to_end(tmp_path):
    stage_inputs(tmp_path)
    run = run_stage(tmp_path, "--attacks", "attacks.npz")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1 and run.stdout.startswith("attack_adaptive models/sanitized.pt: 5 threat model(s) on 1 source(s), tau kl=0.0001, ")
    folder = tmp_path / "m/threats"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.json" for t in params.DEFAULT_THREAT_MODELS)
    results = {t: check_threat_result(json.loads((folder / f"{t}.json").read_text()), t)
               for t in params.DEFAULT_THREAT_MODELS}  # one results file per threat model, one schema
    assert results["sum-kl"]["threat_model"] == {"name": "sum-kl", "attack": "adaptive", "target": "sum",
                                                 "detector": "kl", "knows": params.TARGETS["sum"]}
    assert results["oblivious"]["attack"]["section"] == "cw" and results["adaptive-kl"]["attack"]["steps"] == 6
    assert all(r["n_sources"] == 1 for r in results.values())
    assert list(results["oblivious"]["systems"]) == ["kl", "squeeze", "mahalanobis"]  # rescored under each
    keys = {"n", "success_rate", "mean_l2", "accepted_rate", "system_acc", "found_rate", "found_mean_l2",
            "unsanitized_hit_rate"}
    taus = {"kl": 1e-4, "squeeze": 0.05, "mahalanobis": 50.0}
    for name, detector in (("adaptive-kl", "kl"), ("sum-kl", "kl"), ("adaptive-squeeze", "squeeze"),
                           ("adaptive-mahalanobis", "mahalanobis")):
        assert list(results[name]["systems"]) == [detector]
        system = results[name]["systems"][detector]
        assert system["threshold"] == taus[detector] and set(system["kappas"]) == {"0", "20"}
        for row in system["kappas"].values():
            assert set(row) == keys | {"extra_l2"} and row["n"] == 9  # extra L2 over the oblivious C&W
            assert row["system_acc"]["n"] == row["success_rate"]["n"] == 9  # count leaves over the 9 rows
            assert row["system_acc"]["k"] == 9 - row["success_rate"]["k"]
            assert row["extra_l2"]["n"] <= row["success_rate"]["k"]
    for detector, system in results["oblivious"]["systems"].items():
        assert system["threshold"] == taus[detector]
        assert set(system["kappas"]) == {"0"} and system["kappas"]["0"]["n"] == 9
        assert set(system["kappas"]["0"]) == keys
    view = systems_of(results)  # the report's view: each detector's system under every attacker
    assert set(view) == set(taus) and set(view["kl"]) == {"threshold", "oblivious", "adaptive", "sum"}
    assert view["squeeze"]["adaptive"] == results["adaptive-squeeze"]["systems"]["squeeze"]["kappas"]
    out = np.load(tmp_path / "out/adaptive.npz")
    assert out["adaptive_adv"].shape == (18, 1, 28, 28) and out["adaptive_adv"].dtype == np.float32
    assert np.array_equal(np.isnan(out["sum_l2"]), ~out["sum_found"])
    rule = out["sum_found"] & out["sum_accepted"] & (out["sum_pred"] == out["target"])
    assert np.array_equal(out["sum_success"], rule)
    sources = np.unique(out["index"])
    assert len(sources) == 1 and np.array_equal(np.unique(out["oblivious_index"]), sources)
    for key in ("source", "kappa", "adaptive_score", "oblivious_success", "oblivious_score", "squeeze_adaptive_score",
                "mahalanobis_oblivious_accepted"):
        assert key in out.files
    # without --attacks the oblivious rows are simply absent
    run = run_stage(tmp_path)
    assert run.returncode == 0, run.stderr
    (folder / "stale.json").write_text("{}")  # the folder is replaced whole: nothing of an older run survives
    run = run_stage(tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.stem for p in folder.iterdir()) == sorted(set(params.DEFAULT_THREAT_MODELS) - {"oblivious"})
    assert all("extra_l2" not in row for p in folder.iterdir()
               for system in json.loads(p.read_text())["systems"].values() for row in system["kappas"].values())


def test_stage_rejects_a_bad_detect_file(tmp_path):
    stage_inputs(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"divergence": "kl", "threshold": None}))
    run = run_stage(tmp_path, detect="bad.json")
    assert run.returncode == 1
    assert re.fullmatch(r"error: bad.json: not a detect stage metrics file \(expected divergence, threshold and normal, "
                        r"found divergence, threshold; .*\)\n", run.stderr)
    (tmp_path / "bad.json").write_text(json.dumps({"divergence": "kl", "threshold": None, "normal": {}}))
    run = run_stage(tmp_path, detect="bad.json")
    assert re.fullmatch(r"error: bad.json: threshold of kl: expected a finite number >= 0, got None\n", run.stderr)


