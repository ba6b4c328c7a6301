import pytest
from pydantic import ValidationError

from model.schema import LabelSchema, TaskSpec
from training.paths import DEFAULT_SCHEMA


def test_default_schema_has_the_four_tasks_in_order() -> None:
    schema = LabelSchema.from_yaml(DEFAULT_SCHEMA)
    assert schema.names == ["intent", "sentiment", "needs_response", "urgency"]
    assert schema["intent"].labels == (
        "complaint", "question", "purchase_intent", "suggestion", "praise", "spam", "other",
    )
    assert schema["needs_response"].labels == ("no", "yes")
    assert schema["needs_response"].is_boolean
    assert all(schema["urgency"].definitions[label] for label in schema["urgency"].labels)


def test_bare_yaml_booleans_are_read_back_as_words(tmp_path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text("tasks:\n  urgent:\n    labels:\n      no: not urgent\n      yes: urgent\n")
    assert LabelSchema.from_yaml(path)["urgent"].labels == ("no", "yes")


def test_inline_list_form() -> None:
    schema = LabelSchema.from_mapping({"complaint": ["no", "yes"], "emotion": {"labels": ["anger", "joy"]}})
    assert schema.names == ["complaint", "emotion"]


@pytest.mark.parametrize("labels", [("a",), ("a", "a")])
def test_bad_label_sets_are_refused(labels) -> None:
    with pytest.raises(ValidationError):
        TaskSpec(name="t", labels=labels)


def test_duplicate_task_names_and_unknown_task() -> None:
    spec = TaskSpec(name="t", labels=("a", "b"))
    with pytest.raises(ValidationError):
        LabelSchema(tasks=(spec, spec))
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        LabelSchema(tasks=(spec,))["nope"]
