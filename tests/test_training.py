import hashlib

import numpy as np
import pytest
import torch

from cull.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
from cull.params import Train
from cull.training import accuracy, holdout_split, train_model

# Adam: two epochs on the blobs are too few steps for the default SGD recipe (test_sgd_nesterov_recipe_trains)
TINY = Train(optimizer="adam", lr=1e-3, nesterov=False, lr_decay=0.0, batch_size=32, epochs=2)


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


def test_equal_checkpoints_are_equal_bytes(tmp_path):
    """Same weights and metadata, same file, whatever its name: DVC then hashes a retrained model as unchanged."""
    model = build_model(ModelConfig())
    save_checkpoint(tmp_path / "a.pt", model, meta={"role": "test"})
    (tmp_path / "b").mkdir()
    save_checkpoint(tmp_path / "b" / "seed-0.pt", model, meta={"role": "test"})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "seed-0.pt").read_bytes()


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


def test_inverse_time_decay_matches_keras():
    """Keras' SGD(decay=d) uses lr / (1 + d * t) at update t; ours steps the schedule once per batch."""
    from cull.training import make_optimizer, make_schedule

    train = Train(optimizer="sgd", lr=0.01, nesterov=True, lr_decay=1e-2)
    model = build_model(ModelConfig())
    optimizer = make_optimizer(model, train)
    schedule = make_schedule(optimizer, train)
    assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["momentum"] == 0.9
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.01 / (1 + 1e-2 * t) for t in range(5)])


def test_sgd_nesterov_recipe_trains(blobs):
    x, y = blobs
    recipe = Train(optimizer="sgd", lr=0.01, nesterov=True, lr_decay=1e-6, batch_size=32)
    model, hist = train_model(x, y, train=recipe, epochs=20, seed=0, device=torch.device("cpu"))
    assert accuracy(model, x, y, device=torch.device("cpu")) > 0.9 and hist[-1]["loss"] < hist[0]["loss"]


def test_on_epoch_numbers_join_the_history(blobs):
    x, y = blobs
    seen = []

    def probe(epoch, model):
        seen.append((epoch, model.training))
        return {"probe_acc": accuracy(model, x, y, device=torch.device("cpu"))}

    model, hist = train_model(x, y, train=TINY, epochs=2, seed=3, device=torch.device("cpu"), on_epoch=probe)
    assert seen == [(1, False), (2, False)]
    assert hist[-1]["probe_acc"] == accuracy(model, x, y, device=torch.device("cpu"))
    plain, _ = train_model(x, y, train=TINY, epochs=2, seed=3, device=torch.device("cpu"))
    assert digest(plain) == digest(model)  # probing in eval mode does not change the training
