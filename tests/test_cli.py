import json

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from cull.cli import app
from cull.models import ModelConfig, build_model, save_checkpoint

runner = CliRunner()


def test_params_command(tmp_path):
    assert runner.invoke(app, ["params", "params.yaml"]).exit_code == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("threshold: 1.5\n")
    result = runner.invoke(app, ["params", str(bad)])
    assert result.exit_code == 1
    assert "threshold: expected a threshold in [0, 1), got 1.5" in result.output


def test_check_good_and_corrupt_images(tmp_path):
    for name, seed in (("u.pt", 0), ("s.pt", 1)):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / name, build_model(ModelConfig()), meta={})
    (tmp_path / "detect.json").write_text(json.dumps({"threshold": 0.5, "divergence": "kl", "normal": {}}))
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    result = runner.invoke(app, [
        "check", str(tmp_path / "good.png"), str(tmp_path / "bad.png"),
        "--unsanitized", str(tmp_path / "u.pt"), "--sanitized", str(tmp_path / "s.pt"),
        "--detect-metrics", str(tmp_path / "detect.json"), "--device", "cpu",
    ])
    assert result.exit_code == 1  # one image failed
    lines = result.output.splitlines()
    assert any(line.startswith(str(tmp_path / "good.png")) and ("ACCEPT" in line or "REJECT" in line)
               for line in lines)
    assert any(line.startswith(str(tmp_path / "bad.png")) and "error" in line for line in lines)
    assert lines[-1].startswith("1 checked, 1 failed")


def test_check_takes_every_detector_and_refuses_a_file_without_its_threshold(tmp_path):
    from cull.artifacts import save_npz
    from cull.check import DETECTORS
    from cull.detectors import fit_class_gaussians, penultimate_features

    for name, seed in (("seed-0.pt", 0), ("seed-1.pt", 1), ("s.pt", 2)):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / name, build_model(ModelConfig()), meta={})
    row = {"threshold": 0.5}
    detect = {"divergence": "kl", "threshold": 0.5, "normal": {}, "other_divergences": {"reverse": row, "js": row},
              "baselines": {"squeeze": {"settings": {"bits": 1, "median": 2}, **row}, "mahalanobis": {"settings": {},
                                                                                                       **row}}}
    (tmp_path / "detect.json").write_text(json.dumps(detect))
    (tmp_path / "two.json").write_text(json.dumps({"partner": 1, **detect}))
    (tmp_path / "filter.json").write_text(json.dumps({"threshold": 0.9999, "method": "canonical", "kept": {}}))
    images = np.random.default_rng(0).integers(0, 256, (30, 1, 28, 28), dtype=np.uint8)
    from cull.models import load_checkpoint
    sanitized, _ = load_checkpoint(tmp_path / "s.pt", "cpu")
    fit = fit_class_gaussians(penultimate_features(sanitized, images), np.arange(30) % 10)
    save_npz(tmp_path / "detect.npz", mahalanobis_means=fit.means, mahalanobis_precision=fit.precision)
    Image.fromarray(images[0, 0]).save(tmp_path / "x.png")
    common = ["--unsanitized", str(tmp_path / "seed-0.pt"), "--sanitized", str(tmp_path / "s.pt"), "--device", "cpu",
              "--detect-scores", str(tmp_path / "detect.npz")]
    for name in DETECTORS:
        metrics = tmp_path / ("two.json" if name == "two-seed" else "detect.json")
        result = runner.invoke(app, ["check", str(tmp_path / "x.png"), "--detector", name,
                                     "--detect-metrics", str(metrics), *common])
        assert result.exit_code == 0, (name, result.output)
        assert result.output.splitlines()[-1] == f"1 checked, 0 failed; threshold {name} <= 0.5"
    for metrics, detector, message in (
        ("filter.json", "kl", "filter.json: not a detect stage metrics file"),
        ("detect.json", "two-seed", "detect.json: not a two-seed control metrics file"),
        ("two.json", "nope", "--detector: expected one of kl, reverse, js, squeeze, mahalanobis, two-seed"),
    ):
        result = runner.invoke(app, ["check", str(tmp_path / "x.png"), "--detector", detector,
                                     "--detect-metrics", str(tmp_path / metrics), *common])
        assert result.exit_code == 1 and message in result.output, result.output
    del detect["baselines"]["squeeze"]
    (tmp_path / "detect.json").write_text(json.dumps(detect))
    result = runner.invoke(app, ["check", str(tmp_path / "x.png"), "--detector", "squeeze",
                                 "--detect-metrics", str(tmp_path / "detect.json"), *common])
    assert result.exit_code == 1
    assert "holds no threshold for detector 'squeeze' (it has kl, reverse, js, mahalanobis)" in result.output


def test_check_missing_threshold_file(tmp_path):
    result = runner.invoke(app, ["check", "x.png", "--detect-metrics", str(tmp_path / "absent.json")])
    assert result.exit_code == 1 and "absent.json: file not found" in result.output


def test_doctor_names_the_device_dtypes_threads_and_versions(tmp_path, monkeypatch):
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    shown = dict(line.split(": ", 1) for line in result.output.splitlines())
    resolved = "cuda" if torch.cuda.is_available() else "cpu"
    assert shown["device.setting"] == "auto" and shown["device.resolved"] == resolved
    assert shown["dtypes.training"] == "bfloat16" and shown["versions.torch"] == torch.__version__
    assert int(shown["threads.torch_intra_op"]) == torch.get_num_threads()
    asks_cuda = tmp_path / "p.yaml"
    asks_cuda.write_text("base: {device: cuda}\n")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["doctor", "--params", str(asks_cuda)])
    assert result.exit_code == 1
    assert "error: base.device: 'cuda' was asked for but torch sees no CUDA device" in result.output


def test_device_selection_prefers_cuda_only_when_present(monkeypatch):
    from cull.runtime import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda" and pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
