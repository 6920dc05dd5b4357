import hashlib

import numpy as np
import pytest
import torch

from cull.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
from cull.params import Train
from cull.training import accuracy, holdout_split, train_model

TINY = Train(batch_size=32, epochs=2)


def digest(model):
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.cpu().numpy().tobytes())
    return h.hexdigest()


def test_training_learns_and_is_deterministic(blobs):
    x, y = blobs
    a, hist = train_model(x, y, train=TINY, epochs=2, seed=3, device=torch.device("cpu"))
    b, _ = train_model(x, y, train=TINY, epochs=2, seed=3, device=torch.device("cpu"))
    c, _ = train_model(x, y, train=TINY, epochs=2, seed=4, device=torch.device("cpu"))
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert accuracy(a, x, y, device=torch.device("cpu")) > 0.9
    assert [row["epoch"] for row in hist] == [1, 2] and hist[-1]["loss"] < hist[0]["loss"]


def test_shapes_and_svhn_arch():
    for arch, c in (("cw_mnist", 1), ("cw_svhn", 3)):
        model = build_model(ModelConfig(arch=arch, in_channels=c))
        assert model(torch.rand(5, c, 28, 28)).shape == (5, 10)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    model = build_model(ModelConfig())
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, meta={"role": "test"})
    loaded, meta = load_checkpoint(path)
    assert meta == {"role": "test"} and digest(loaded) == digest(model)
    assert not loaded.training
    with pytest.raises(ValueError, match="model expects 1-channel images, data has 3"):
        load_checkpoint(path, in_channels=3)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"corrupt.pt: not a readable checkpoint"):
        load_checkpoint(corrupt)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": 1, "config": {"arch": "cw_svhn", "in_channels": 3}, "state_dict": model.state_dict()}, other)
    with pytest.raises(ValueError, match="does not match its architecture"):
        load_checkpoint(other)


def test_no_leftover_temp_files(tmp_path):
    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig()), meta={})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


@pytest.mark.parametrize("by_group", [False, True])
def test_holdout_split(by_group):
    groups = np.repeat(np.arange(20), 7)
    train, test = holdout_split(groups, test_fraction=0.2, by_group=by_group, seed=0)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(groups)
    assert abs(len(test) / len(groups) - 0.2) < 0.01
    if by_group:
        assert not set(groups[train]) & set(groups[test])
    again = holdout_split(groups, test_fraction=0.2, by_group=by_group, seed=0)
    assert np.array_equal(again[1], test)
