"""Linear backend: TF-IDF word and character n-grams shared by all tasks, one logistic regression per task."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion
from tqdm import tqdm

from model.backends.linear import CLASSIFIERS_FILE, VECTORIZER_FILE
from model.schema import LabelSchema
from model.text import normalise
from training.config import TrainConfig
from training.datasets import Example


def train_linear(config: TrainConfig, schema: LabelSchema, train: list[Example], staging: Path) -> dict[str, Any]:
    """Fit and save the vectoriser and per-task classifiers into `staging`; returns details for the manifest."""
    params = config.linear
    started = time.perf_counter()
    texts = [normalise(e.post.text) for e in train]
    vectorizer = FeatureUnion(
        [
            ("word", TfidfVectorizer(
                analyzer="word", ngram_range=params.word_ngrams, min_df=params.min_df, sublinear_tf=True,
                max_features=params.max_features, lowercase=True,
            )),
            ("char", TfidfVectorizer(
                analyzer="char_wb", ngram_range=params.char_ngrams, min_df=params.min_df, sublinear_tf=True,
                max_features=params.max_features, lowercase=True,
            )),
        ]
    )
    features = vectorizer.fit_transform(texts)
    classifiers = {}
    for task in tqdm(schema.tasks, desc="linear heads", unit="task"):
        rows = [i for i, e in enumerate(train) if task.name in e.labels]
        targets = [train[i].labels[task.name] for i in rows]
        classifier = LogisticRegression(
            C=params.C, class_weight=params.class_weight, max_iter=params.max_iter, random_state=config.seed
        )
        classifiers[task.name] = classifier.fit(features[rows], targets)
    joblib.dump(vectorizer, staging / VECTORIZER_FILE)
    joblib.dump(classifiers, staging / CLASSIFIERS_FILE)
    return {
        "training": {
            "wall_seconds": round(time.perf_counter() - started, 2),
            "features": int(features.shape[1]),
            "examples": len(train),
        }
    }
