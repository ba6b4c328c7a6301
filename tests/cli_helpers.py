"""Run `triage-train` in-process, as a user would from the shell."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from training.cli import app


def triage_train(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def latest_version(models: Path, name: str) -> Path:
    return models / name / (models / name / "latest").read_text().strip()


def manifest_of(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())
