"""Stage detect_two_seed: the control detector, KL between two unsanitized models (beyond the paper).

    python stages/detect_two_seed.py --params params.yaml --seed S --data data/dataset.npz \
        --models models/unsanitized --attacks data/models/unsanitized --out X.npz --metrics X.json

Does the paper's KL detect adversarial examples because of sanitization, or
because any two independently trained models disagree on them? This stage
pairs the unsanitized model of seed S with that of the next seed in params
`seeds` (`cull.schema.partner_seed`) and scores, exactly as the detect stage
scores a sanitized model, the adversarial examples made on the partner
(attack_unsanitized), with tau calibrated on the validation normals. With a
single seed there is no partner; the metrics say so and the aggregate leaves
the control out.
"""
import argparse
from pathlib import Path

from cull import params
from cull.artifacts import load_npz, save_json, save_npz
from cull.detection import ADVERSARIAL_IMAGES, ATTACK_KEYS, DATA_KEYS, detection_metrics, score_attacks, summarize
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage
from cull.schema import partner_seed



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data", required=True, help="dataset .npz (val_x, val_y, test_x, test_y)")
    parser.add_argument("--models", required=True, help="folder of the unsanitized models, seed-<s>.pt")
    parser.add_argument("--attacks", required=True, help="folder of the unsanitized attacks, seed-<s>/attacks.npz")
    parser.add_argument("--out", required=True, help="divergences .npz")
    parser.add_argument("--metrics", required=True, help="metrics .json")
    args = parser.parse_args()

    p = params.load(args.params, "base", "detect", "seeds")
    partner = partner_seed(p["seeds"], args.seed)
    if partner is None:
        save_npz(args.out)
        save_json(args.metrics, {"partner": None})
        print(f"detect_two_seed: seed {args.seed} has no partner (one seed); the control is left out")
        return
    device = pick_device(p["base"].device)
    data = load_npz(args.data, DATA_KEYS)
    attacks = load_npz(Path(args.attacks) / f"seed-{partner}" / "attacks.npz", ATTACK_KEYS, finite=ADVERSARIAL_IMAGES)
    channels = data["test_x"].shape[1]
    first, _ = load_checkpoint(Path(args.models) / f"seed-{args.seed}.pt", device, in_channels=channels)
    second, _ = load_checkpoint(Path(args.models) / f"seed-{partner}.pt", device, in_channels=channels)
    scores = score_attacks(data, attacks, unsanitized=first, sanitized=second, device=device)
    metrics = detection_metrics(scores, acceptance=p["detect"].acceptance, divergence=p["detect"].divergence)
    save_npz(args.out, **scores)
    save_json(args.metrics, {"partner": partner, **metrics})
    print(f"detect_two_seed {args.seed}+{partner}: {summarize(metrics)}")


if __name__ == "__main__":
    run_stage(main)
