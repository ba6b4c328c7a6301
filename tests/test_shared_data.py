"""The shared real datasets load through the project's validation (skipped without ../shared, failing when CI=true)."""

from pathlib import Path

import pytest

from model.schema import LabelSchema
from training.config import DatasetSpec
from training.datasets import load_dataset
from training.paths import DEFAULT_SCHEMA

pytestmark = pytest.mark.shared_data
SCHEMA = LabelSchema.from_yaml(DEFAULT_SCHEMA)


@pytest.mark.parametrize(("split", "rows"), [("train", 3990), ("validation", 578)])
def test_brand_intent_loads_with_all_four_tasks(shared_data: Path, split: str, rows: int) -> None:
    dataset = load_dataset(DatasetSpec(path=shared_data / "brand_intent" / f"{split}.jsonl"), SCHEMA)
    assert len(dataset.examples) == rows
    assert dataset.fingerprint(SCHEMA)["labelled"] == dict.fromkeys(SCHEMA.names, rows)
    assert {e.extras.get("source") for e in dataset.examples} == {"airline", "twcs", "complaints", "sanders", "sxsw"}


def test_project_posts_are_the_shared_original_posts(shared_data: Path) -> None:
    """data/brand_posts is exactly brand_posts_original, split (nothing lost or added)."""
    project = Path(__file__).resolve().parent.parent / "data" / "brand_posts"
    shipped = sorted(
        line for part in ("train", "validation") for line in (project / f"{part}.jsonl").read_text().splitlines()
    )
    import json

    original = sorted(
        json.dumps(json.loads(line), ensure_ascii=False)
        for line in (shared_data / "brand_posts_original" / "posts.jsonl").read_text().splitlines()
    )
    assert shipped == original
