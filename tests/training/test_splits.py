from collections import Counter

from tests.posts_factory import make_posts
from training.splits import split_rows


def test_split_is_deterministic_stratified_and_order_preserving() -> None:
    rows = make_posts(copies=10)
    train, validation = split_rows(rows, 0.2)
    again_train, again_validation = split_rows(list(rows), 0.2)
    assert (train, validation) == (again_train, again_validation)
    assert len(validation) == 24 and len(train) + len(validation) == len(rows)
    everywhere, held_out = Counter(r["intent"] for r in rows), Counter(r["intent"] for r in validation)
    assert all(held_out[intent] == 0.2 * count for intent, count in everywhere.items())
    assert [rows.index(r) for r in train] == sorted(rows.index(r) for r in train)


def test_adding_rows_does_not_move_existing_ones_much() -> None:
    rows = make_posts(copies=10)
    _, before = split_rows(rows, 0.2)
    _, after = split_rows(rows + make_posts(copies=1, start=10), 0.2)
    moved = {r["id"] for r in before} - {r["id"] for r in after}
    assert len(moved) <= len(before) // 4


def test_holdout_is_carved_from_training_rows(config_file, tmp_path) -> None:
    from tests.cli_helpers import latest_version, manifest_of, triage_train

    result = triage_train("fit", "--config", config_file, "--set", "validation=[]", "--set", "holdout.fraction=0.25",
                          "--output", tmp_path / "m")
    assert result.exit_code == 0, result.output
    data = manifest_of(latest_version(tmp_path / "m", "tiny"))["data"]
    # round(n * 0.25) per intent: about a quarter of the 60 rows, and none lost
    assert 12 <= data["holdout"]["rows"] <= 16 and data["holdout"]["rows"] + data["train_rows_used"] == 60
