from pathlib import Path

import pytest

from training.config import ConfigError, DistillConfig, load_config, parse_override


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_paths_resolve_against_the_config_and_shared_data_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_SHARED_DATA", "/data/shared")
    (tmp_path / "configs").mkdir()
    config = load_config(write(tmp_path / "configs" / "c.yaml", (
        "name: demo\nschema: ../labels.yaml\ntrain:\n  - ../train.jsonl\n"
        "validation:\n  - path: ${TRIAGE_SHARED_DATA}/x/validation.jsonl\n"
        "  - path: ../val_text.txt\n    label_files:\n      sentiment: ${TRIAGE_SHARED_DATA}/x/val_labels.txt\n"
    )))
    assert config.schema_file == tmp_path / "labels.yaml"
    assert config.train[0].path == tmp_path / "train.jsonl"
    assert config.validation[0].path == Path("/data/shared/x/validation.jsonl")
    assert config.validation[1].path == tmp_path / "val_text.txt"
    assert config.validation[1].label_files == {"sentiment": Path("/data/shared/x/val_labels.txt")}


def test_overrides_are_typed_and_cli_paths_are_relative_to_cwd(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "name: demo\ntrain: [a.jsonl]\n")
    config = load_config(
        path,
        {"transformer.epochs": 3, "transformer.dropout": 0.2, "train": ["b.jsonl"], "backend": "linear"},
        cli_base=Path("/work/here"),
    )
    assert config.transformer.epochs == 3 and config.transformer.dropout == 0.2 and config.backend == "linear"
    assert config.train[0].path == Path("/work/here/b.jsonl")


def test_one_teacher_or_a_list_resolve_against_the_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    one = load_config(write(tmp_path / "configs" / "one.yaml", "name: s\ntrain: [t.jsonl]\nteacher: ../models/a\n"),
                      kind=DistillConfig)
    assert one.teacher == [str(tmp_path / "models" / "a")]
    many = load_config(write(tmp_path / "configs" / "many.yaml",
                             "name: s\ntrain: [t.jsonl]\nteacher: [../models/a, /abs/b]\n"), kind=DistillConfig)
    assert many.teacher == [str(tmp_path / "models" / "a"), "/abs/b"]
    flags = load_config(tmp_path / "configs" / "many.yaml", {"teacher": ["m/c"]}, cli_base=Path("/work/here"),
                        kind=DistillConfig)
    assert flags.teacher == ["/work/here/m/c"]


def test_parse_override() -> None:
    assert parse_override("transformer.class_weights=false") == ("transformer.class_weights", False)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("epochs")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: demo\ntrain: [a.jsonl]\ntransformer:\n  epochz: 3\n", "field 'transformer.epochz': unknown field"),
        ("name: demo\ntrain: [a.jsonl]\nbackend: svm\n", "field 'backend'"),
        ("name: demo\ntrain: []\n", "'train' needs at least one dataset"),
        ("name: demo\ntrain: [{path: a.jsonl, join_on_text: true}]\n", "every one has join_on_text"),
        ("name: demo\ntrain: [a.jsonl]\nvalidation: [{path: b.jsonl, join_on_text: true}]\n",
         "join_on_text labels training rows only"),
        ("name: demo\ntrain: [a.jsonl]\ntransformer:\n  epochs: 0\n", "field 'transformer.epochs'"),
        ("- a list\n", "a config is a YAML mapping"),
    ],
)
def test_invalid_configs_name_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path / "c.yaml", body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_inline_tasks_define_a_custom_label_set(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "name: demo\ntrain: [a.jsonl]\ntasks:\n  complaint: ['no', 'yes']\n")
    assert load_config(path).label_schema().names == ["complaint"]
