"""DVC stage: IGSM accuracy of one seed's unsanitized model over a grid of step sizes (the paper gives none).

    python stages/alpha_sweep.py --params params.yaml --seed S --model models/unsanitized/seed-S.pt \
        --data data/dataset.npz --metrics metrics/alpha/sweep/seed-S.json

Reads params alpha, igsm and base. Writes, per step size of alpha.alphas and
per iteration count of igsm.iterations, the accuracy on alpha.n seeded test
images (`cull.calibration.sweep`), and the step at which this seed's IGSM-5
accuracy is the paper's (`calibrate`, under "calibrated"); prints one line.
"""
import argparse

from cull import params
from cull.artifacts import load_npz, save_json
from cull.calibration import calibrate, summary_line, sweep
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--model", required=True, help="the unsanitized model's checkpoint")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    args = parser.parse_args(argv)
    p = params.load(args.params, "alpha", "igsm", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    data = load_npz(args.data, ("test_x", "test_y"))
    model, _ = load_checkpoint(args.model, device, in_channels=data["test_x"].shape[1])
    result = sweep(model, data["test_x"], data["test_y"], alpha=p["alpha"], igsm=p["igsm"], seed=args.seed,
                   device=device)
    result["calibrated"] = calibrate(result, alpha=p["alpha"])
    save_json(args.metrics, result)
    print(f"alpha sweep {args.model}: {summary_line(result)}")


if __name__ == "__main__":
    run_stage(main)
