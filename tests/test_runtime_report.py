"""bench/runtime_report.py renders the runtime section from a hand-written results dict (no data, no timing)."""

import json
from pathlib import Path

from bench.runtime_report import render_runtime, runtime_section

AGREE = {"intent": 1.0, "sentiment": 0.99}


def results() -> dict:
    return {
        "when": "2026-01-01T00:00:00+00:00", "machine": "a test CPU, 2 logical cores", "commit": "0123456789abcdef",
        "command": ".venv/bin/python bench/runtime.py --model m", "quick": False, "seconds": 5.0, "batch_size": 32,
        "model": "m", "version": "v1", "onnxruntime": "1.0", "int8_source": "served int8",
        "sample": {"source": "brand_intent/validation.jsonl", "texts": 64},
        "token_lengths": {
            "sets": {"own": {"n": 10, "mean": 20.5, "p50": 20.0, "p90": 30.0, "p95": 31.0, "p99": 40.0, "max": 41,
                             "share_over": {"32": 0.2, "48": 0.0, "64": 0.0, "96": 0.0, "128": 0.0}},
                     "absent set": {"skipped": "skipped: /x not found"}},
            "truncation_budget": 0.01, "justified_max_length": 48},
        "max_length": [{"max_length": 128, "posts_per_s": 100.0, "truncated_share": 0.0, "agreement": AGREE,
                        "min_agreement": 0.99},
                       {"max_length": 48, "posts_per_s": 120.0, "truncated_share": 0.0, "agreement": AGREE,
                        "min_agreement": 0.99}],
        "bucketing": {"sorted by length": {"posts_per_s": 150.0, "padding_fraction": 0.3},
                      "arrival order": {"posts_per_s": 100.0, "padding_fraction": 0.45}},
        "ort_settings": [{"setting": "defaults (OnnxPredictor's)", "options": {}, "posts_per_s": 100.0},
                         {"setting": "intra_op_num_threads 1", "options": {"threads": 1}, "posts_per_s": 80.0}],
        "quantization": {
            "reference": "ONNX fp32", "agreement_data": "data/brand_posts/validation.jsonl", "agreement_texts": 360,
            "calibration_data": "data/brand_posts/train.jsonl", "static_calibration_texts": 512,
            "smoothing": {"alpha": 0.9, "calibration_texts": 2040},
            "variants": [
                {"variant": "fp32", "posts_per_s": 50.0, "agreement": AGREE, "min_agreement": 0.99},
                {"variant": "dynamic int8", "posts_per_s": 100.0, "agreement": AGREE, "min_agreement": 0.99},
                {"variant": "static int8", "errors": ["extra_options {}: ValueError: range | -inf"],
                 "extra_options": None},
            ]},
        "int8_instructions": {
            "cpu": {"model": "a test CPU", "logical_cores": 2, "flags": {"avx512_vnni": True, "amx_int8": False}},
            "onnxruntime": "1.0", "providers": ["CPUExecutionProvider"],
            "micro_benchmark": {"shape": [2048, 384, 1536], "fp32_matmul_gflops": 100.0,
                                "int8_matmulinteger_gflops": 300.0, "int8_over_fp32": 3.0},
            "int8_graph_ops_after_optimisation": {"com.microsoft:DynamicQuantizeMatMul": 18, "ai.onnx:Add": 3}},
    }


def test_renders_every_part() -> None:
    text = "\n".join(render_runtime(results()))
    assert "`.venv/bin/python bench/runtime.py --model m`" in text and "commit 0123456789" in text
    assert "| own | 10 | 20.5 | 20 | 30 | 31 | 40 | 41 | 20.0% |" in text and "absent set: skipped" in text
    assert "**max length 48**" in text and "| 48 (justified) | 120 | 1.20 |" in text
    assert "| arrival order | 100 | 45.0% |" in text
    assert "| intra_op_num_threads 1 | 80 | 0.80 |" in text
    assert "| dynamic int8 | 100 | 2.00 | 100.0 | 99.0 | **99.0** |" in text
    assert "| static int8 | failed |" in text and "range \\| -inf" in text  # a pipe in an error keeps the table
    assert "**3.00×**" in text and "VNNI" in text and "DynamicQuantizeMatMul ×18" in text
    assert "ai.onnx:Add" not in text
    assert "not measurements" not in text


def test_quick_runs_are_marked_and_a_missing_file_renders_nothing(tmp_path: Path) -> None:
    assert runtime_section(tmp_path / "absent.json") == ""
    quick = results() | {"quick": True}
    (tmp_path / "runtime.json").write_text(json.dumps(quick), encoding="utf-8")
    assert "not measurements" in runtime_section(tmp_path / "runtime.json")
