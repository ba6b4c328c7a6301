"""ONNX export on a tiny trained transformer: parity, manifest checksums, refusals, and a torch-free predictor."""

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from model.artifact import load_manifest
from model.posts import Post
from model.predictor import load_predictor
from tests.cli_helpers import manifest_of, triage_train
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from training.config import load_config
from training.fit import run_fit
from training.quantize import quantise, quantised_matmuls

TEXTS = ["@LarkAir my bag never arrived 😡", "thanks for the quick refund!", "is the shop open on sunday?"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    root = tmp_path_factory.mktemp("export")
    train = write_jsonl(root / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(root / "validation.jsonl", make_posts(copies=2, start=5))
    config = load_config(write_config(root / "config.yaml", train, validation),
                         {"backend": "transformer", "transformer.encoder": str(tiny_encoder), "transformer.epochs": 1})
    return run_fit(config, root / "models", log=lambda _: None)


@pytest.fixture
def model(trained: Path, tmp_path: Path) -> Path:
    """A private copy, so each test may change it."""
    return Path(shutil.copytree(trained, tmp_path / trained.name))


def test_export_adds_both_graphs_with_parity_and_checksums(model: Path) -> None:
    result = triage_train("export", "--model", model, "--min-int8-agreement", "0")
    assert result.exit_code == 0, result.output
    _, manifest = load_manifest(model)  # verifies every checksum, the new files included
    export = manifest.onnx
    assert {"onnx/model.onnx", "onnx/model.int8.onnx"} <= set(manifest.files)
    assert export["parity"]["texts"] == 24
    assert "fp32_fallback" not in export and "kept fp32" not in export["quantization"]  # it passed: nothing kept
    for task, measured in export["parity"]["fp32"].items():
        assert measured["agreement"] == 1.0 and measured["max_prob_diff"] < 1e-4, task
    assert load_predictor(model).backend == "onnx-int8"


def test_onnx_fp32_matches_torch_through_the_same_contract(model: Path) -> None:
    assert triage_train("export", "--model", model, "--min-int8-agreement", "0").exit_code == 0
    posts = [Post(id=str(i), text=text) for i, text in enumerate(TEXTS)]
    eager = load_predictor(model, backend="torch").predict(posts)
    onnx = load_predictor(model, backend="onnx-fp32").predict(posts)
    for a, b in zip(eager, onnx, strict=True):
        assert a.id == b.id and a.labels == b.labels
        for task in a.probabilities:
            assert np.allclose(list(a.probabilities[task].values()), list(b.probabilities[task].values()), atol=1e-5)


def test_int8_under_the_bar_fails_and_leaves_the_artifact_unchanged(model: Path) -> None:
    before = (model / "manifest.json").read_bytes()
    result = triage_train("export", "--model", model, "--min-int8-agreement", "1.01")
    assert result.exit_code == 1 and "export failed: int8 argmax agreement" in result.output
    assert (model / "manifest.json").read_bytes() == before and not (model / "onnx").exists()


def test_without_require_int8_only_fp32_is_added(model: Path) -> None:
    result = triage_train("export", "--model", model, "--min-int8-agreement", "1.01", "--no-require-int8",
                          "--max-fp32-fallback", "0")
    assert result.exit_code == 0, result.output
    export = manifest_of(model)["onnx"]
    assert export["files"] == {"fp32": "onnx/model.onnx"} and "int8_rejected" in export
    assert "fp32_fallback" not in export  # 0 turns the fallback off
    assert not (model / "onnx" / "model.int8.onnx").exists()
    assert load_predictor(model).backend == "onnx-fp32"


def test_the_onnx_predictor_never_imports_torch(model: Path) -> None:
    assert triage_train("export", "--model", model, "--min-int8-agreement", "0").exit_code == 0
    script = (
        "import sys\n"
        "from model.predictor import load_predictor\n"
        f"predictor = load_predictor({str(model)!r})\n"
        f"print(predictor.backend, predictor.predict_proba({TEXTS!r})['intent'].shape)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.splitlines() == ["onnx-int8 (3, 7)", "heavy: []"]


def test_export_refuses_a_linear_model(data_files: tuple[Path, Path], config_file: Path, tmp_path: Path) -> None:
    linear = run_fit(load_config(config_file), tmp_path / "m", log=lambda _: None)
    result = triage_train("export", "--model", linear)
    assert result.exit_code == 2 and "only transformer models export to ONNX" in result.output


def test_parity_data_can_be_given(model: Path, tmp_path: Path) -> None:
    extra = write_jsonl(tmp_path / "extra.jsonl", [{"text": text, "intent": "other"} for text in TEXTS])
    result = triage_train("export", "--model", model, "--data", extra, "--min-int8-agreement", "0")
    assert result.exit_code == 0, result.output
    assert json.loads((model / "manifest.json").read_text())["onnx"]["parity"]["texts"] == 3


def test_the_same_contract_across_linear_torch_and_onnx(
    model: Path, config_file: Path, tmp_path: Path
) -> None:
    assert triage_train("export", "--model", model, "--min-int8-agreement", "0").exit_code == 0
    linear = run_fit(load_config(config_file), tmp_path / "linear", log=lambda _: None)
    posts = [Post(id=f"p{i}", text=text) for i, text in enumerate(TEXTS)]
    default_onnx = load_predictor(model, backend="onnx-fp32").predict(posts)
    tuned_onnx = load_predictor(model, backend="onnx-fp32", threads=1, spin=False).predict(posts)
    for tuned, default in zip(tuned_onnx, default_onnx, strict=True):  # thread settings change speed, not results
        for task, distribution in default.probabilities.items():
            assert tuned.probabilities[task] == pytest.approx(distribution, abs=1e-5)
    for path, backend in ((linear, "linear"), (model, "torch"), (model, "onnx-fp32"), (model, "onnx-int8")):
        predictor = load_predictor(path, backend=backend)
        assert predictor.backend == backend
        predictions = predictor.predict(posts)
        assert [p.id for p in predictions] == ["p0", "p1", "p2"]
        for prediction in predictions:
            assert list(prediction.labels) == ["intent", "sentiment", "needs_response", "urgency"]
            for task, distribution in prediction.probabilities.items():
                assert sum(distribution.values()) == pytest.approx(1)
                assert prediction.labels[task] == max(distribution, key=distribution.get)


def test_export_records_the_smoothing_and_calibrates_on_training_data(model: Path) -> None:
    result = triage_train("export", "--model", model, "--min-int8-agreement", "0")
    assert result.exit_code == 0, result.output
    export = manifest_of(model)["onnx"]
    assert export["smoothing"]["alpha"] == 0.9 and export["smoothing"]["layers"] == 10
    assert export["smoothing"]["calibration_texts"] == 60 and export["smoothing"]["calibration"][0].endswith(
        "train.jsonl")
    assert "smoothed activations (alpha 0.9)" in export["quantization"]
    assert all(r["agreement"] == 1.0 for r in export["parity"]["fp32"].values())  # the fp32 graph is not smoothed


def test_export_without_smoothing(model: Path) -> None:
    result = triage_train("export", "--model", model, "--min-int8-agreement", "0", "--smooth-alpha", "0")
    assert result.exit_code == 0, result.output
    export = manifest_of(model)["onnx"]
    assert "smoothing" not in export and export["quantization"] == "dynamic int8, per-channel weights"


def test_int8_under_the_bar_keeps_its_most_sensitive_matmuls_in_fp32_up_to_the_cap(model: Path) -> None:
    result = triage_train("export", "--model", model, "--min-int8-agreement", "1.01", "--no-require-int8",
                          "--max-fp32-fallback", "2")
    assert result.exit_code == 0, result.output
    assert "ranking" in result.output and "int8 with 2 fp32 matmuls parity" in result.output
    export = manifest_of(model)["onnx"]
    fallback = export["fp32_fallback"]
    assert len(fallback["matmuls"]) == 2 and fallback["of"] > 2 and fallback["ranking_texts"] == 60
    assert fallback["ranked_on"][0].endswith("train.jsonl")  # ranked on training texts, not the parity texts
    assert export["int8_rejected"]["reason"].endswith("with 2 matmuls kept fp32")


def test_quantise_keeps_the_named_matmuls_in_fp32(model: Path, tmp_path: Path) -> None:
    assert triage_train("export", "--model", model, "--min-int8-agreement", "0").exit_code == 0
    fp32, int8 = model / "onnx" / "model.onnx", tmp_path / "int8.onnx"

    def operators(keep: list[str]) -> Counter:
        quantise(fp32, int8, keep)
        return Counter(node.op_type for node in onnx.load(str(int8)).graph.node)

    everything = operators([])
    matmuls = quantised_matmuls(fp32, int8)
    heads = 4  # Gemm nodes, always quantised
    assert len(matmuls) == everything["MatMulInteger"] - heads > 4
    one_kept = operators(matmuls[:1])
    assert one_kept["MatMulInteger"] == everything["MatMulInteger"] - 1
    assert quantised_matmuls(fp32, int8) == matmuls[1:]
    all_kept = operators(matmuls)
    assert all_kept["MatMulInteger"] == heads and quantised_matmuls(fp32, int8) == []


def test_missing_calibration_data_is_a_clear_error(model: Path, tmp_path: Path) -> None:
    result = triage_train("export", "--model", model, "--calibration", tmp_path / "absent.jsonl")
    assert result.exit_code != 0 and "absent.jsonl" in result.output


def test_only_the_gated_tasks_decide_whether_int8_is_added(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose sentiment head (say, an auxiliary task) quantises badly can still serve int8 for intent."""
    import training.export as export_module

    measured = export_module.parity

    def sentiment_disagrees(reference, candidate, texts):  # the int8 graph's sentiment head: half its argmaxes differ
        results = measured(reference, candidate, texts)
        if candidate.backend == "onnx-int8":
            results = {task: {**r, "agreement": 0.5 if task == "sentiment" else 1.0} for task, r in results.items()}
        return results

    monkeypatch.setattr(export_module, "parity", sentiment_disagrees)
    bar = ["--min-int8-agreement", "0.99", "--no-require-int8", "--max-fp32-fallback", "0"]
    result = triage_train("export", "--model", model, *bar)
    assert result.exit_code == 0 and "int8_rejected" in manifest_of(model)["onnx"]  # every task gates by default
    result = triage_train("export", "--model", model, *bar, "--gate-task", "intent", "--gate-task", "urgency")
    assert result.exit_code == 0, result.output
    export = manifest_of(model)["onnx"]
    assert export["parity_gate_tasks"] == ["intent", "urgency"] and "int8" in export["files"]
    assert export["parity"]["int8"]["sentiment"]["agreement"] == 0.5  # still measured and recorded
    assert load_predictor(model).backend == "onnx-int8"


def test_an_unknown_gate_task_is_a_clear_error(model: Path) -> None:
    result = triage_train("export", "--model", model, "--gate-task", "mood")
    assert result.exit_code != 0 and "no task mood" in result.output and "intent" in result.output
    assert not (model / "onnx").exists()


def test_the_fp32_fallback_is_ranked_on_the_gated_tasks_error_only(
        model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An auxiliary head's int8 error must not pick which matmuls stay fp32 for the task that is served."""
    import training.export as export_module

    ranked_on: list[list[str]] = []
    measured = export_module.rank_by_sensitivity

    def recording(source, int8, scratch, score, reference, log):
        ranked_on.append(sorted(reference))
        return measured(source, int8, scratch, score, reference, log)

    monkeypatch.setattr(export_module, "rank_by_sensitivity", recording)
    bar = ["--min-int8-agreement", "1.01", "--no-require-int8", "--max-fp32-fallback", "1"]
    assert triage_train("export", "--model", model, *bar, "--gate-task", "intent").exit_code == 0
    assert triage_train("export", "--model", model, *bar).exit_code == 0
    assert ranked_on == [["intent"], ["intent", "needs_response", "sentiment", "urgency"]]
