"""The estimator layer: the detector, its network wrapper and helpers."""

# Registers the detector's model-file codec with sk_asd.io.model, which
# cannot import the estimator layer itself (layers point one way).
from sk_asd.estimator import persistence as _persistence  # noqa: F401
