"""Stage attack_adaptive: an attacker who knows the KL detector (beyond the paper, §4).

    python stages/attack_adaptive.py --params params.yaml --data data/dataset.npz \
        --unsanitized models/unsanitized.pt --sanitized models/sanitized.pt \
        --detect metrics/detect/sanitized.json [--attacks data/attacks/sanitized.npz] \
        --out data/adaptive/sanitized.npz --metrics metrics/adaptive/sanitized.json

Reads params adaptive and base, and tau and the divergence from the detect
stage's metrics. Runs the adaptive C&W and the summed-logits C&W against the
detector + sanitized classifier system; with --attacks, rescores the attack
stage's oblivious C&W rows for the same source images alike. Writes the rows
to --out and the tallies per variant and kappa to --metrics.
"""
import argparse

from cull import params
from cull.artifacts import load_json, load_npz, save_json, save_npz
from cull.attacks.adaptive_run import OBLIVIOUS_KEYS, attack_system, summary_line
from cull.detection import read_detect_metrics
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--unsanitized", required=True, help="unsanitized model checkpoint")
    parser.add_argument("--sanitized", required=True, help="sanitized model checkpoint (the system's classifier)")
    parser.add_argument("--detect", required=True, help="detect stage metrics JSON (threshold, divergence)")
    parser.add_argument("--attacks", help="attack stage .npz for the sanitized model (oblivious C&W rows)")
    parser.add_argument("--out", required=True, help="output .npz of adversarial rows")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    args = parser.parse_args(argv)
    p = params.load(args.params, "adaptive", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    detector = read_detect_metrics(load_json(args.detect), args.detect)
    data = load_npz(args.data, ("test_x", "test_y"))
    oblivious = load_npz(args.attacks, OBLIVIOUS_KEYS, finite=("cw_adv",)) if args.attacks else None
    channels = data["test_x"].shape[1]
    unsanitized, _ = load_checkpoint(args.unsanitized, device, in_channels=channels)
    sanitized, _ = load_checkpoint(args.sanitized, device, in_channels=channels)
    arrays, metrics, seconds = attack_system(
        unsanitized, sanitized, data["test_x"], data["test_y"], adaptive=p["adaptive"], detector=detector,
        seed=args.seed, device=device, oblivious=oblivious,
    )
    save_npz(args.out, **arrays)
    save_json(args.metrics, metrics)
    print(f"attack_adaptive {args.sanitized}: {summary_line(metrics, seconds)}")


if __name__ == "__main__":
    run_stage(main)
