"""Linear backend: TF-IDF word and character n-grams with one logistic regression per task."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from model.artifact import Manifest
from model.predictor import Predictor

VECTORIZER_FILE = "vectorizer.joblib"
CLASSIFIERS_FILE = "heads.joblib"
# Logit given to a label the training data never showed: its probability is ~0 at any temperature.
ABSENT_LABEL_LOGIT = -1e4


def task_logits(classifier, features, n_labels: int) -> np.ndarray:
    """Logits over the task's full label set from a fitted LogisticRegression.

    A binary classifier's decision d becomes logits [0, d] (softmax of which is sigmoid(d)); labels the classifier
    never saw in training get ABSENT_LABEL_LOGIT.
    """
    decision = classifier.decision_function(features)
    if decision.ndim == 1:
        decision = np.stack([np.zeros_like(decision), decision], axis=1)
    logits = np.full((decision.shape[0], n_labels), ABSENT_LABEL_LOGIT)
    logits[:, classifier.classes_] = decision
    return logits


class LinearPredictor(Predictor):
    backend = "linear"

    def __init__(self, version_dir: Path, manifest: Manifest, batch_size: int = 256):
        super().__init__(version_dir, manifest, batch_size)
        # joblib unpickles code: only ever called after load_manifest verified these files' checksums.
        self.vectorizer = joblib.load(version_dir / VECTORIZER_FILE)
        self.classifiers = joblib.load(version_dir / CLASSIFIERS_FILE)

    def _logits(self, texts: list[str]) -> dict[str, np.ndarray]:
        features = self.vectorizer.transform(texts)
        return {
            task.name: task_logits(self.classifiers[task.name], features, len(task.labels)) for task in self.tasks
        }
