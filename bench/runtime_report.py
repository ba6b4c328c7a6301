"""The runtime-options section of BENCHMARKS.md, from bench/results/runtime.json (written by bench/runtime.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUNTIME_RESULTS = Path(__file__).resolve().parent / "results" / "runtime.json"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _agreement_cells(agreement: dict[str, float], tasks: list[str]) -> str:
    return " | ".join(f"{100 * agreement[t]:.1f}" for t in tasks)


def render_token_lengths(section: dict[str, Any]) -> list[str]:
    measured = {name: s for name, s in section["sets"].items() if "n" in s}
    over = list(next(iter(measured.values()))["share_over"]) if measured else []
    lines = ["### Token lengths of real posts", "",
             "The artifact's tokenizer on normalised texts (what the model sees), special tokens included, no "
             "truncation.", "",
             "| set | posts | mean | p50 | p90 | p95 | p99 | max | " + " | ".join(f"> {n}" for n in over) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(over)]
    for name, s in measured.items():
        shares = " | ".join(_percent(s["share_over"][n]) for n in over)
        lines.append(f"| {name} | {s['n']:,} | {s['mean']:.1f} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p95']:.0f} "
                     f"| {s['p99']:.0f} | {s['max']} | {shares} |")
    lines += [f"- {name}: {s['skipped']}" for name, s in section["sets"].items() if "skipped" in s]
    justified = section["justified_max_length"]
    budget = _percent(section["truncation_budget"])
    lines += ["", f"Justified by the distribution: **max length {justified}**, the smallest candidate that truncates "
              f"at most {budget} of every set above." if justified else
              f"No candidate max length truncates at most {budget} of every set.", ""]
    return lines


def render_max_length(rows: list[dict[str, Any]], justified: int | None) -> list[str]:
    tasks = list(rows[0]["agreement"])
    base = rows[0]["posts_per_s"]
    lines = ["### Max length", "",
             "int8, batch 32, on the timing sample; agreement: argmax agreement per task with max length "
             f"{rows[0]['max_length']} on the same texts (percent). Each batch is padded to its longest text, so a "
             "max length only saves work in batches that hold a longer text.", "",
             "| max length | posts/s | × | truncated in sample | " + " | ".join(tasks) + " | worst |",
             "|---|---|---|---|" + "---|" * len(tasks) + "---|"]
    for row in rows:
        mark = " (justified)" if row["max_length"] == justified else ""
        lines.append(f"| {row['max_length']}{mark} | {row['posts_per_s']:.0f} | {row['posts_per_s'] / base:.2f} "
                     f"| {_percent(row['truncated_share'])} | {_agreement_cells(row['agreement'], tasks)} "
                     f"| **{100 * row['min_agreement']:.1f}** |")
    return [*lines, ""]


def render_bucketing(section: dict[str, dict[str, float]]) -> list[str]:
    lines = ["### Length-bucketed batches", "",
             "int8, batch 32, the timing sample sorted by token count before batching (what the ONNX predictor "
             "does), by characters (what it did before), or in arrival order. Padding: the mean share of padded "
             "positions per batch.", "",
             "| order | posts/s | padding per batch |", "|---|---|---|"]
    lines += [f"| {name} | {row['posts_per_s']:.0f} | {_percent(row['padding_fraction'])} |"
              for name, row in section.items()]
    return [*lines, ""]


def render_ort_settings(rows: list[dict[str, Any]]) -> list[str]:
    base = rows[0]["posts_per_s"]
    lines = ["### ONNX Runtime session settings", "",
             "int8, batch 32. The first row is OnnxPredictor's defaults: all graph optimisations, ONNX Runtime's own "
             "intra-op thread count, spinning on, sequential execution; each other row changes one setting. "
             "(`triage-serve` turns spinning off unless `TRIAGE_SPIN` is set.)", "",
             "| setting | posts/s | × first row |", "|---|---|---|"]
    lines += [f"| {row['setting']} | {row['posts_per_s']:.0f} | {row['posts_per_s'] / base:.2f} |" for row in rows]
    return [*lines, ""]


def render_quantization(section: dict[str, Any]) -> list[str]:
    measured = [row for row in section["variants"] if "agreement" in row]
    tasks = list(measured[0]["agreement"]) if measured else []
    fp32 = next((row["posts_per_s"] for row in measured if row["variant"] == "fp32"), None)
    smoothing = section["smoothing"]
    lines = ["### Static against dynamic int8", "",
             f"Agreement: argmax agreement per task with the {section['reference']} graph on "
             f"`{section['agreement_data']}` ({section['agreement_texts']} texts, percent). Static: QDQ format, "
             f"MatMul nodes, per-channel weights, MinMax ranges from {section['static_calibration_texts']} texts of "
             f"`{section['calibration_data']}`; \"weight MatMuls only\" leaves the attention products in fp32, "
             "as dynamic int8 does. Smoothed: the export's activation smoothing "
             f"(alpha {smoothing['alpha']}, {smoothing['calibration_texts']} calibration texts) before quantising. "
             "Posts/s: batch 32.", "",
             "| variant | posts/s | × fp32 | " + " | ".join(tasks) + " | worst | notes |",
             "|---|---|---|" + "---|" * len(tasks) + "---|---|"]
    for row in section["variants"]:
        notes = "; ".join(row.get("errors") or [])
        if row.get("extra_options"):
            notes = f"extra_options {row['extra_options']}" + (f" (after: {notes})" if notes else "")
        notes = notes.replace("|", "\\|").replace("\n", " ")
        if "agreement" not in row:
            lines.append(f"| {row['variant']} | failed | – | " + " | ".join("–" for _ in tasks) + f" | – | {notes} |")
            continue
        ratio = f"{row['posts_per_s'] / fp32:.2f}" if fp32 else "–"
        lines.append(f"| {row['variant']} | {row['posts_per_s']:.0f} | {ratio} | "
                     f"{_agreement_cells(row['agreement'], tasks)} | **{100 * row['min_agreement']:.1f}** | {notes} |")
    return [*lines, ""]


def ratio_reading(ratio: float) -> str:
    if ratio >= 2.0:
        return ("int8 runs at least twice the fp32 rate: consistent with VNNI-class int8 dot-product kernels "
                "(VNNI int8 kernels typically give about 2-4x fp32)")
    if ratio >= 1.0:
        return ("int8 gains less than 2x over fp32: what int8 kernels without VNNI give (about 1-2x), or a fp32 "
                "path that is itself fast (AVX-512 FMA)")
    return "int8 is slower than fp32 here: no int8 kernel advantage on this CPU and runtime"


def render_int8_instructions(section: dict[str, Any]) -> list[str]:
    cpu, micro = section["cpu"], section["micro_benchmark"]
    m, k, n = micro["shape"]
    flags = ", ".join(f"`{flag}` {'yes' if present else 'no'}" for flag, present in cpu["flags"].items())
    ops = ", ".join(f"{op} ×{count}" for op, count in section["int8_graph_ops_after_optimisation"].items()
                    if any(word in op for word in ("MatMul", "Quantize", "Attention", "Gelu", "Norm")))
    return ["### CPU int8 instructions", "",
            f"- CPU: {cpu['model']}, {cpu['logical_cores']} logical cores; {flags}.",
            f"- ONNX Runtime {section['onnxruntime']} ({', '.join(section['providers'])}). Its MLAS library picks "
            "the int8 GEMM kernel from CPUID at run time (AVX2, AVX-VNNI, AVX512-VNNI, AMX); no API reports which "
            "one ran, so the micro-benchmark below is the evidence.",
            f"- One node, [{m}, {k}] × [{k}, {n}] (a batch of tokens through a MiniLM FFN): fp32 MatMul "
            f"{micro['fp32_matmul_gflops']:.0f} GFLOP/s, uint8 × int8 MatMulInteger "
            f"{micro['int8_matmulinteger_gflops']:.0f} GOP/s: **{micro['int8_over_fp32']:.2f}×**. "
            f"{ratio_reading(micro['int8_over_fp32'])}.",
            f"- The int8 model after ONNX Runtime's graph optimisations runs: {ops or 'no int8 operators'}.", ""]


def render_runtime(results: dict[str, Any]) -> list[str]:
    lengths = results["token_lengths"]
    lines = ["## Runtime options: lengths, batching, ONNX Runtime settings, int8 kernels (issue 7)", ""]
    if results.get("quick"):
        lines += ["**Written by a `--quick` check run: these figures are not measurements.**", ""]
    lines += [f"Generated by `{results['command']}` ({results['when']}, {results['machine']}, commit "
              f"{(results.get('commit') or 'unknown')[:10]}); all figures from that one run. Model "
              f"`{results['model']}` version {results['version']}; int8 graph: {results['int8_source']}. Bare model "
              f"only (no service). Figures compared in one table were timed in {results.get('rounds', 1)} interleaved "
              f"rounds (each variant once per round, {results['seconds']:g} s each in all, after a warm-up) and "
              f"are medians, since this machine's speed drifts within minutes; on "
              f"{results['sample']['texts']} real texts from {results['sample']['source']}.", ""]
    lines += render_token_lengths(lengths)
    lines += render_max_length(results["max_length"], lengths["justified_max_length"])
    lines += render_bucketing(results["bucketing"])
    lines += render_ort_settings(results["ort_settings"])
    lines += render_quantization(results["quantization"])
    lines += render_int8_instructions(results["int8_instructions"])
    return lines


def runtime_section(path: Path = RUNTIME_RESULTS) -> str:
    """The section's markdown, or nothing when bench/runtime.py has not been run."""
    if not path.is_file():
        return ""
    return "\n" + "\n".join(render_runtime(json.loads(path.read_text(encoding="utf-8"))))
