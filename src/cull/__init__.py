"""cull: Less is More (Liu, Chen and Chen, 2018) as a reproducible pipeline.

Outliers in a training set make a model easier to fool. cull finds them
(canonical or self sanitization), retrains without them, attacks both models
(IGSM, Carlini-Wagner L2) and detects adversarial inputs by the KL divergence
between the unsanitized and sanitized models' outputs.
"""

__version__ = "0.1.0"
