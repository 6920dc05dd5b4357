"""DVC stage: Fig. 4 at the calibrated IGSM step size and at cleverhans' default, for one model and seed.

    python stages/igsm_alpha.py --params params.yaml --seed S --model models/X/seed-S.pt \
        --data data/dataset.npz --sweep metrics/alpha/sweep/seed-S.json \
        --metrics metrics/models/X/seed-S/igsm_alpha.json

Reads params alpha, igsm and base. Writes the IGSM accuracy per iteration
count at both step sizes (`cull.calibration.accuracy_at`); prints one line.
"""
import argparse

from cull import params
from cull.artifacts import load_json, load_npz, save_json
from cull.calibration import accuracy_at, summary_line
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--model", required=True, help="checkpoint to attack")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--sweep", required=True, help="this seed's alpha_sweep JSON (its calibrated step)")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    args = parser.parse_args(argv)
    p = params.load(args.params, "alpha", "igsm", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    calibrated = load_json(args.sweep)["calibrated"]
    data = load_npz(args.data, ("test_x", "test_y"))
    model, _ = load_checkpoint(args.model, device, in_channels=data["test_x"].shape[1])
    result = accuracy_at(model, data["test_x"], data["test_y"], calibrated=calibrated, alpha=p["alpha"],
                         igsm=p["igsm"], seed=args.seed, device=device)
    save_json(args.metrics, result)
    print(f"igsm_alpha {args.model}: {summary_line(result)}")


if __name__ == "__main__":
    run_stage(main)
