"""The IGSM step-size sweep and its calibration (cull.calibration) on a tiny CNN and on synthetic sweeps."""
import numpy as np
import pytest
import torch
from conftest import small_cnn, synthetic

from cull.attacks import igsm
from cull.calibration import accuracy_at, alpha_key, calibrate, sweep
from cull.params import Alpha, Igsm
from cull.schema import count

pytestmark = pytest.mark.usefixtures("one_thread")


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def model_and_test_set():
    model = small_cnn(0, *synthetic(512, seed=1))
    x, y = synthetic(80, seed=2)
    return model, as_uint8(x), y.numpy()


def fake_sweep(acc5: dict) -> dict:
    return {"eps": 0.3, "n_images": 100, "acc": {alpha_key(a): {"5": count(round(100 * r), 100)}
                                                 for a, r in acc5.items()}}


def test_calibrate_interpolates_between_the_bracketing_steps():
    alpha = Alpha(alphas=[0.01, 0.02, 0.04], target_accuracy=0.5)
    out = calibrate(fake_sweep({0.01: 0.85, 0.02: 0.6, 0.04: 0.2}), alpha=alpha)
    # 0.5 lies between 0.02 and 0.04, a quarter of the way from 0.60 to 0.20
    assert out["bracket"] == [0.02, 0.04]
    assert out["alpha"] == pytest.approx(0.02 + 0.02 * (0.6 - 0.5) / (0.6 - 0.2))
    assert (out["target_accuracy"], out["iterations"], out["reference"]) == (0.5, 5, 0.05)


def test_calibrate_names_the_grid_when_the_target_is_not_bracketed():
    alpha = Alpha(alphas=[0.01, 0.02], target_accuracy=0.533)
    with pytest.raises(ValueError, match=r"alpha.alphas: no two neighbouring step sizes in \[0.01, 0.02\] bracket "
                                         r"the target IGSM-5 accuracy 53.3% \(the accuracy runs from 90.0% "
                                         r"to 80.0%\)"):
        calibrate(fake_sweep({0.01: 0.9, 0.02: 0.8}), alpha=alpha)


def test_sweep_counts_igsm_accuracy_on_the_seeded_images(model_and_test_set):
    model, x, y = model_and_test_set
    alpha = Alpha(alphas=[0.005, 0.05], n=40)
    out = sweep(model, x, y, alpha=alpha, igsm=Igsm(eps=0.3, iterations=[5, 15]), seed=0, device="cpu")
    assert out["n_images"] == 40 and sorted(out["acc"]) == sorted(map(alpha_key, alpha.alphas))
    weak, strong = out["acc"][alpha_key(0.005)], out["acc"][alpha_key(0.05)]
    assert weak["5"]["n"] == 40 and strong["15"]["k"] < weak["5"]["k"]  # larger steps, more steps: fewer right
    # the same count, computed directly with the attack on every image of the test set the sweep chose from
    chosen = np.sort(np.random.default_rng([0, 0]).permutation(len(y))[:40])
    xs = torch.as_tensor(x[chosen]).float() / 255
    adv = igsm(model, xs, torch.as_tensor(y[chosen]), eps=0.3, alpha=0.05, iterations=(15,))[15]
    with torch.no_grad():
        assert strong["15"]["k"] == int((model(adv).argmax(1).numpy() == y[chosen]).sum())


def test_accuracy_at_a_grid_point_equals_the_sweep(model_and_test_set):
    model, x, y = model_and_test_set
    alpha = Alpha(alphas=[0.02, 0.05], n=40, reference=0.05)
    igsm_params = Igsm(eps=0.3, iterations=[5, 10])
    swept = sweep(model, x, y, alpha=alpha, igsm=igsm_params, seed=1, device="cpu")
    out = accuracy_at(model, x, y, calibrated={"alpha": 0.02}, alpha=alpha, igsm=igsm_params, seed=1, device="cpu")
    assert out["calibrated"]["alpha"] == 0.02 and out["reference"]["alpha"] == 0.05
    assert out["calibrated"]["acc"] == swept["acc"][alpha_key(0.02)]
    assert out["reference"]["acc"] == swept["acc"][alpha_key(0.05)]
