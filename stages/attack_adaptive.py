"""Stage attack_adaptive: an attacker who knows the detector (beyond the paper, §4), for every detector.

    python stages/attack_adaptive.py --params params.yaml --seed S --data data/dataset.npz \
        --unsanitized models/unsanitized/seed-S.pt --sanitized models/M/seed-S.pt \
        --detect metrics/models/M/seed-S/detect.json --detect-scores data/models/M/seed-S/detect.npz \
        [--attacks data/models/M/seed-S/attacks.npz] --out data/models/M/seed-S/adaptive.npz \
        --metrics metrics/models/M/seed-S/adaptive.json

Reads params adaptive and base, and each detector's tau (and the squeezers'
settings) from the detect stage's metrics, the Mahalanobis Gaussians from its
.npz. Runs the adaptive C&W against each detector + sanitized classifier system
of `adaptive.detectors`, and the summed-logits C&W against the KL system; with
--attacks, rescores the attack stage's oblivious C&W rows for the same source
images under each system. Writes the rows to --out and the tallies per
system, variant and kappa to --metrics.
"""
import argparse

from cull import params
from cull.artifacts import load_json, load_npz, save_json, save_npz
from cull.attacks.adaptive_run import OBLIVIOUS_KEYS, attack_system, summary_line
from cull.attacks.targets import detector_systems
from cull.detection import read_detect_metrics
from cull.detectors import ClassGaussians
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--unsanitized", required=True, help="unsanitized model checkpoint")
    parser.add_argument("--sanitized", required=True, help="sanitized model checkpoint (the system's classifier)")
    parser.add_argument("--detect", required=True, help="detect stage metrics JSON (each detector's threshold)")
    parser.add_argument("--detect-scores", help="detect stage .npz (the Mahalanobis class Gaussians)")
    parser.add_argument("--attacks", help="attack stage .npz for the sanitized model (oblivious C&W rows)")
    parser.add_argument("--out", required=True, help="output .npz of adversarial rows")
    parser.add_argument("--metrics", required=True, help="output metrics JSON")
    args = parser.parse_args(argv)
    p = params.load(args.params, "adaptive", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    adaptive = p["adaptive"]
    detect = load_json(args.detect)
    read_detect_metrics(detect, args.detect)  # refuse another kind of file before any model loads
    gaussians = None
    if "mahalanobis" in adaptive.detectors:
        if not args.detect_scores:
            raise ValueError("--detect-scores: needed for the mahalanobis detector (adaptive.detectors)")
        fit = load_npz(args.detect_scores, ("mahalanobis_means", "mahalanobis_precision"))
        gaussians = ClassGaussians(means=fit["mahalanobis_means"], precision=fit["mahalanobis_precision"])
    data = load_npz(args.data, ("test_x", "test_y"))
    oblivious = load_npz(args.attacks, OBLIVIOUS_KEYS, finite=("cw_adv",)) if args.attacks else None
    channels = data["test_x"].shape[1]
    unsanitized, _ = load_checkpoint(args.unsanitized, device, in_channels=channels)
    sanitized, _ = load_checkpoint(args.sanitized, device, in_channels=channels)
    systems = detector_systems(adaptive.detectors, unsanitized=unsanitized, sanitized=sanitized, detect=detect,
                               detect_path=args.detect, gaussians=gaussians)
    arrays, metrics, seconds = attack_system(
        unsanitized, systems, data["test_x"], data["test_y"], adaptive=adaptive, seed=args.seed, device=device,
        oblivious=oblivious,
    )
    save_npz(args.out, **arrays)
    save_json(args.metrics, metrics)
    print(f"attack_adaptive {args.sanitized}: {summary_line(metrics, seconds)}")


if __name__ == "__main__":
    run_stage(main)
