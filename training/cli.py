"""`triage-train`: fit, evaluate and split, from the command line.

Errors in configs, data or artifacts print one clear message (file, line, field) and exit with status 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from model.artifact import ArtifactError
from model.policy import PolicyError
from training.config import ConfigError, load_config, parse_override
from training.datasets import DatasetError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def _quiet_hugging_face() -> None:
    """Our own bars show progress; the per-file load/save bars of transformers only add noise to the log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate and version Tweet Triage models.")
console = Console(stderr=True, soft_wrap=True)


def _log(message: str) -> None:
    console.print(message, highlight=False, markup=False)


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, DatasetError, ArtifactError, PolicyError) as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(code=2) from err

    return wrapper


def _columns(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise ConfigError(f"--column expects FIELD=COLUMN, got {pair!r}")
        mapping[field] = column
    return mapping


def _overrides(set_: list[str] | None, flags: dict[str, Any]) -> dict[str, Any]:
    """`--set key=value` overrides, then the command's own flags (those given) on top."""
    overrides: dict[str, Any] = dict(parse_override(item) for item in set_ or [])
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return overrides


def _train(run: Callable[[], Path | None]) -> tuple[Path, dict[str, Any]] | None:
    """Run a training command; on Ctrl-C say how to resume. Returns the published version and its manifest (None
    off the main process of a multi-GPU run)."""
    _quiet_hugging_face()
    try:
        target = run()
    except KeyboardInterrupt:
        _log("interrupted: resume from the last finished epoch with --resume RUN_DIR (printed above)")
        raise typer.Exit(code=130) from None
    return None if target is None else (target, json.loads((target / "manifest.json").read_text()))


def _report_published(target: Path, manifest: dict[str, Any], label: str, sources: list[dict[str, Any]]) -> None:
    """Log the published model's validation score beside its source models' (teachers, ingredients); print its path."""
    mean = manifest.get("metrics", {}).get("mean_macro_f1")
    source_means = [source.get("validation_mean_macro_f1") for source in sources]
    scores = [f"validation mean macro-F1 {mean:.4f}"] if mean is not None else []
    if mean is not None and None not in source_means:
        scores.append(f"{label} " + ", ".join(f"{value:.4f}" for value in source_means))
    _log(f"published {target}" + (f" ({'; '.join(scores)})" if scores else ""))
    print(target)


@app.command()
@_friendly_errors
def fit(
    config: Annotated[Path, typer.Option(help="YAML training config", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option(help="artifact root: writes ROOT/NAME/VERSION and ROOT/NAME/latest")] = Path(
        "models"
    ),
    backend: Annotated[str | None, typer.Option(help="linear or transformer")] = None,
    train: Annotated[list[Path] | None, typer.Option(help="training file (repeatable); replaces the config's")] = None,
    validation: Annotated[list[Path] | None, typer.Option(help="validation file (repeatable)")] = None,
    name: Annotated[str | None, typer.Option(help="model name (the NAME directory)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    encoder: Annotated[str | None, typer.Option(help="transformer encoder: checkpoint dir or hub name")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    max_length: Annotated[int | None, typer.Option()] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="any config field, e.g. transformer.dropout=0.2 (repeatable)")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="run directory of an interrupted fit to resume")] = None,
    keep_checkpoints: Annotated[bool, typer.Option(help="keep the run's checkpoints after publishing")] = False,
) -> None:
    """Train a model from a config and publish it as a versioned artifact."""
    flags = {
        "backend": backend, "name": name, "seed": seed, "transformer.encoder": encoder, "transformer.epochs": epochs,
        "transformer.batch_size": batch_size, "transformer.learning_rate": learning_rate,
        "transformer.max_length": max_length,
        "train": [str(p) for p in train] if train else None,
        "validation": [str(p) for p in validation] if validation else None,
    }
    resolved = load_config(config, _overrides(set_, flags))

    from training.fit import run_fit

    published = _train(lambda: run_fit(resolved, output, resume=resume, keep_checkpoints=keep_checkpoints, log=_log))
    if published is not None:
        target, manifest = published
        mean = manifest.get("metrics", {}).get("mean_macro_f1")
        _log(f"published {target}" + (f" (validation mean macro-F1 {mean:.4f})" if mean is not None else ""))
        print(target)


@app.command()
@_friendly_errors
def distill(
    config: Annotated[Path, typer.Option(help="YAML distillation config", exists=True, dir_okay=False)],
    teacher: Annotated[
        list[Path] | None,
        typer.Option(help="teacher model: version or NAME directory (else the config's); repeat it to distil an "
                     "ensemble (the student starts from the first, unless --student-from)"),
    ] = None,
    student_from: Annotated[
        Path | None,
        typer.Option(help="start the student from this model (version or NAME directory) instead of the first "
                     "teacher: its layers, tokenizer and heads; it must have the teachers' tasks and labels"),
    ] = None,
    output: Annotated[Path, typer.Option(help="artifact root: writes ROOT/NAME/VERSION and ROOT/NAME/latest")] = Path(
        "models"
    ),
    name: Annotated[str | None, typer.Option(help="student model name (the NAME directory)")] = None,
    keep_layers: Annotated[
        str | None, typer.Option(help="teacher layers the student keeps, comma-separated (default every other)")
    ] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="any config field, e.g. distill.temperature=3 (repeatable)")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="run directory of an interrupted distillation to resume")] = None,
    keep_checkpoints: Annotated[bool, typer.Option(help="keep the run's checkpoints after publishing")] = False,
) -> None:
    """Distil a teacher model (or an ensemble of them) into a student and publish it as a normal artifact."""
    from training.config import DistillConfig

    layers = None
    if keep_layers is not None:
        try:
            layers = [int(part) for part in keep_layers.split(",") if part.strip()]
        except ValueError as err:
            raise ConfigError(f"--keep-layers expects comma-separated integers, got {keep_layers!r}") from err
    flags = {"teacher": [str(path) for path in teacher] if teacher else None,
             "student_from": str(student_from) if student_from else None, "name": name,
             "distill.keep_layers": layers, "transformer.epochs": epochs}
    resolved = load_config(config, _overrides(set_, flags), kind=DistillConfig)

    from training.distill import run_distill

    published = _train(lambda: run_distill(resolved, output, resume=resume, keep_checkpoints=keep_checkpoints,
                                           log=_log))
    if published is not None:
        teachers = published[1]["distillation"]["teachers"]
        _report_published(*published, "teacher" if len(teachers) == 1 else "teachers", teachers)


@app.command()
@_friendly_errors
def soup(
    config: Annotated[Path, typer.Option(help="YAML config: the soup's name, its validation data, and the data the "
                                         "ingredients were trained on", exists=True, dir_okay=False)],
    ingredient: Annotated[
        list[Path], typer.Option(help="a model to average (version or NAME directory); two or more, fine-tuned from "
                                 "the same encoder with the same tasks")],
    output: Annotated[Path, typer.Option(help="artifact root: writes ROOT/NAME/VERSION and ROOT/NAME/latest")] = Path(
        "models"
    ),
    name: Annotated[str | None, typer.Option(help="the soup's model name (the NAME directory)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="any config field (repeatable)")] = None,
) -> None:
    """Average the weights of several fine-tuned models into one (a model soup) and publish it as an artifact."""
    resolved = load_config(config, _overrides(set_, {"name": name}))

    from training.soup import run_soup

    published = _train(lambda: run_soup(resolved, [str(path) for path in ingredient], output, log=_log))
    if published is not None:
        _report_published(*published, "ingredients", published[1]["soup"]["ingredients"])


@app.command()
@_friendly_errors
def adapt(
    config: Annotated[Path, typer.Option(help="YAML adaptation config (unlabelled texts, exclusions, MLM settings)",
                                         exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option(help="writes OUTPUT/NAME, an encoder directory")] = Path("models/encoders"),
    max_steps: Annotated[int | None, typer.Option(help="stop after this many optimiser steps")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="any config field, e.g. adapt.learning_rate=1e-4 (repeatable)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run of this config from its checkpoint")]
    = False,
) -> None:
    """Continue masked-language-model training of an encoder on unlabelled tweets (domain adaptation).

    The result is an encoder directory for `transformer.encoder` in any training config."""
    from training.config import AdaptConfig
    from training.domain_adapt import loss_text, run_adapt

    resolved = load_config(config, _overrides(set_, {"adapt.max_steps": max_steps}), kind=AdaptConfig)
    _quiet_hugging_face()
    try:
        target = run_adapt(resolved, output, resume=resume, log=_log)
    except KeyboardInterrupt:
        _log("interrupted: run the same command with --resume to continue from the last checkpoint")
        raise typer.Exit(code=130) from None
    record = json.loads((target / "adaptation.json").read_text())
    loss = record["heldout_mlm_loss"]
    _log(f"wrote {target}: held-out MLM loss {loss_text(loss['before'])} -> {loss_text(loss['after'])}; use it with "
         f"--set transformer.encoder={target}")
    print(target)


@app.command()
@_friendly_errors
def evaluate(
    model: Annotated[Path, typer.Option(help="version directory, or NAME directory (its latest version)")],
    data: Annotated[list[Path], typer.Option(help="labelled JSONL/CSV/Parquet file (repeatable)")],
    output: Annotated[Path, typer.Option(help="directory for report.json, report.md and plots")] = Path("evaluation"),
    baseline: Annotated[Path | None, typer.Option(help="a second model: deltas, paired bootstrap intervals")] = None,
    slice_: Annotated[str | None, typer.Option("--slice", help="column to report metrics per value of")] = None,
    column: Annotated[list[str] | None, typer.Option(help="FIELD=COLUMN mapping for the data (repeatable)")] = None,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the 95% intervals")] = 1000,
    plots: Annotated[bool, typer.Option(help="write confusion matrices and reliability diagrams")] = True,
    policy: Annotated[Path | None, typer.Option(help="priority policy for the ranking metrics")] = None,
    backend: Annotated[str, typer.Option(help="auto, linear, torch, onnx-fp32 or onnx-int8")] = "auto",
) -> None:
    """Evaluate a model on labelled data: metrics with intervals, calibration, slices and baseline deltas."""
    from training.evaluate import run_evaluate

    _quiet_hugging_face()
    report = run_evaluate(model, data, output, baseline=baseline, slice_column=slice_, columns=_columns(column),
                          n_bootstrap=bootstrap, plots=plots, policy_file=policy, backend=backend, log=_log)
    for task, metrics in report["tasks"].items():
        _log(f"{task:>16}: accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
             f"macro-recall {metrics['macro_recall']:.4f}  ECE {metrics['ece']:.4f}  (n={metrics['n']})")
    for name, scores in report.get("ranking", {}).get("orders", {}).items():
        _log(f"ranking {name:>27}: " + "  ".join(f"{metric} {value:.3f}" for metric, value in scores.items()))
    _log(f"report written to {output}/report.json and {output}/report.md")


@app.command()
@_friendly_errors
def export(
    model: Annotated[Path, typer.Option(help="transformer model: version or NAME directory")],
    data: Annotated[list[Path] | None, typer.Option(help="texts for parity (default: manifest's validation)")] = None,
    min_int8_agreement: Annotated[float, typer.Option(help="argmax agreement the int8 copy needs per task")] = 0.99,
    require_int8: Annotated[bool, typer.Option(help="fail when int8 misses the bar (else keep fp32 only)")] = True,
    smooth_alpha: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="activation smoothing before int8 quantisation (0: none)")] = 0.9,
    calibration: Annotated[list[Path] | None, typer.Option(
        help="texts that set the smoothing and rank the fp32 fallback (default: manifest's training data)")] = None,
    max_fp32_fallback: Annotated[int, typer.Option(
        min=0, help="when int8 misses the bar, keep up to this many of its most sensitive matmuls in fp32")] = 4,
    gate_task: Annotated[list[str] | None, typer.Option(
        help="only this task's parity decides int8 (repeatable; default: every task), e.g. when the other heads "
             "were auxiliary tasks that only helped training")] = None,
) -> None:
    """Add ONNX graphs (fp32 and dynamic int8, all heads in one pass) with measured parity to a model."""
    from training.export import ExportFailed, run_export

    _quiet_hugging_face()
    try:
        result = run_export(model, data, min_int8_agreement=min_int8_agreement, require_int8=require_int8,
                            smooth_alpha=smooth_alpha, calibration=calibration,
                            max_fp32_fallback=max_fp32_fallback, gate_tasks=gate_task, log=_log)
    except ExportFailed as err:
        console.print(f"[bold red]export failed:[/] {err}", highlight=False)
        raise typer.Exit(code=1) from err
    _log(f"added {', '.join(result['files'].values())} to {model}")


@app.command()
@_friendly_errors
def predict(
    model: Annotated[Path, typer.Option(help="version or NAME directory")],
    input: Annotated[Path, typer.Option(help="posts to score: JSONL, CSV or Parquet")],
    output: Annotated[Path, typer.Option(help="scored posts: .jsonl (full, re-scorable), .csv or .parquet (flat)")],
    policy: Annotated[Path | None, typer.Option(help="priority policy YAML (default: the packaged one)")] = None,
    on_error: Annotated[str, typer.Option(help="fail: stop on any bad row; skip: report bad rows and go on")] = "fail",
    backend: Annotated[str, typer.Option(help="auto, linear, torch, onnx-fp32 or onnx-int8")] = "auto",
    column: Annotated[list[str] | None, typer.Option(help="FIELD=COLUMN mapping for the input (repeatable)")] = None,
    now: Annotated[datetime | None, typer.Option(help="the time post ages are measured at (default: now)")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
) -> None:
    """Score posts: each task's label and probabilities, then priority, tier, route and reasons."""
    from training.scoring import ON_ERROR, run_predict

    if on_error not in ON_ERROR:
        raise ConfigError(f"--on-error must be one of {list(ON_ERROR)}, got {on_error!r}")
    _quiet_hugging_face()
    summary = run_predict(model, input, output, policy_file=policy, on_error=on_error, backend=backend,
                          columns=_columns(column), now=now, batch_size=batch_size, log=_log)
    _log(f"wrote {summary['scored']} scored posts to {output}" +
         (f" ({summary['skipped']} bad rows skipped)" if summary["skipped"] else ""))


@app.command()
@_friendly_errors
def rescore(
    input: Annotated[Path, typer.Option(help="a JSONL file written by `triage-train predict`", exists=True)],
    output: Annotated[Path, typer.Option(help=".jsonl, .csv or .parquet")],
    policy: Annotated[Path | None, typer.Option(help="priority policy YAML (default: the packaged one)")] = None,
    now: Annotated[datetime | None, typer.Option(help="the time post ages are measured at (default: now)")] = None,
) -> None:
    """Re-apply a priority policy to stored model outputs, without running the model."""
    from training.scoring import run_rescore

    run_rescore(input, output, policy_file=policy, now=now, log=_log)


@app.command()
@_friendly_errors
def split(
    input: Annotated[Path, typer.Option(help="JSONL file to split", exists=True, dir_okay=False)],
    output_dir: Annotated[Path, typer.Option(help="writes train.jsonl and validation.jsonl here")],
    validation_fraction: Annotated[float, typer.Option()] = 0.15,
    stratify: Annotated[str | None, typer.Option(help="field whose label shares are kept")] = "intent",
    salt: Annotated[str, typer.Option(help="changes the split while keeping it deterministic")] = "tweet-triage",
) -> None:
    """Split a JSONL file deterministically (stratified, hash-ranked) into train and validation files."""
    from training.splits import split_rows

    rows = []
    for number, line in enumerate(input.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DatasetError([f"{input}:{number}: invalid JSON: {err.msg}"]) from err
    train_rows, validation_rows = split_rows(rows, validation_fraction, stratify=stratify, salt=salt)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train_rows), ("validation", validation_rows)):
        with (output_dir / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in part)
    _log(f"{len(train_rows)} train and {len(validation_rows)} validation rows written to {output_dir}")


def main() -> None:  # pragma: no cover - `python -m training.cli`
    app(prog_name="triage-train")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
