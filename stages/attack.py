"""DVC stage: IGSM and Carlini & Wagner attacks on one model (paper §3.1, §3.3).

    python stages/attack.py --params params.yaml --model models/X.pt --data data/dataset.npz \
        --out data/attacks/X.npz --metrics metrics/attacks/X.json

Reads params igsm, cw and base. Writes the adversarial images and per-row
results to --out and the tallies (IGSM accuracy per step count, C&W success
rate and mean L2 per kappa) to --metrics; prints one summary line.
"""
import argparse

from cull import params
from cull.artifacts import load_npz, save_json, save_npz
from cull.attacks.run import attack_model, summary_line
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--model", required=True, help="checkpoint to attack")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--out", required=True, help="output .npz of adversarial examples")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    args = parser.parse_args(argv)
    p = params.load(args.params, "igsm", "cw", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    data = load_npz(args.data, ("test_x", "test_y"))
    model, _ = load_checkpoint(args.model, device, in_channels=data["test_x"].shape[1])
    arrays, metrics, seconds = attack_model(
        model, data["test_x"], data["test_y"],
        igsm=p["igsm"], cw=p["cw"], seed=args.seed, device=device,
    )
    save_npz(args.out, **arrays)
    save_json(args.metrics, metrics)
    print(f"attack {args.model}: {summary_line(metrics, seconds)}")


if __name__ == "__main__":
    run_stage(main)
