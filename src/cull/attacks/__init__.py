"""Adversarial attacks of the paper (§3.1): IGSM (L-inf, untargeted) and Carlini & Wagner (L2, targeted),
and beyond it the adaptive C&W on a detector + classifier system.

Each attack is a function on one batch of (N, C, H, W) images in [0, 1]; the C&W
family shares one call shape, ``attack(target, images, labels, targets, **settings)
-> AttackResult``, and its params sections are callable the same way (`CW`,
`cull.attacks.adaptive.AdaptiveCW`: the sections `cull.params.Cw` and `Adaptive`). `cull.attacks.run` batches an attack over rows of a
test set for a named threat model (`cull.params.ThreatModel`) and tallies the results.
"""
from cull.attacks.cw import CW, AttackResult, CwResult, cw_l2, target_margin
from cull.attacks.igsm import igsm

__all__ = ["CW", "AttackResult", "CwResult", "cw_l2", "igsm", "target_margin"]
