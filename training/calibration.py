"""Per-task temperature scaling, fitted on validation logits (Guo et al., 2017)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from model.calibration import softmax

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits, temperature)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T); 1.0 when there is nothing to fit on.

    Searched on log T, bounded to [0.05, 20]: one scalar cannot change the argmax, so accuracy is untouched.
    """
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
    )
    return round(float(np.exp(result.x)), 4)
