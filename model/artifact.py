"""Versioned model artifacts: layout, manifest, checksums, and refusing what is corrupt or incompatible.

Layout::

    ROOT/NAME/latest             text file naming the newest VERSION
    ROOT/NAME/VERSION/manifest.json
    ROOT/NAME/VERSION/...        weights, tokenizer, report (every file's sha256 is in the manifest)

Every `--model` option accepts a VERSION directory or a NAME directory (meaning its latest version).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.schema import LabelSchema, TaskSpec
from model.text import NORMALISATION_VERSION

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"
# Transformer artifacts: a Hugging Face encoder checkpoint with its tokenizer, the task heads, and ONNX exports.
ENCODER_DIR = "encoder"
HEADS_FILE = "heads.safetensors"
ONNX_DIR = "onnx"

Backend = Literal["linear", "transformer"]


class ArtifactError(Exception):
    """A model directory that cannot be used: missing, corrupt, or made for another format."""


class Manifest(BaseModel):
    """What a model version is, how it was made, and the checksum of every file it holds.

    Later features add keys beside these (extra keys are kept, not rejected).
    """

    model_config = ConfigDict(extra="allow")

    format_version: int
    name: str
    version: str
    created_at: str
    backend: Backend
    tasks: tuple[TaskSpec, ...]
    normalisation_version: int
    encoder: dict[str, Any] | None = None
    max_length: int | None = None
    seed: int
    config: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def schema_(self) -> LabelSchema:
        return LabelSchema(tasks=self.tasks)


def new_version() -> str:
    """A sortable UTC timestamp, e.g. 20261126T153512Z."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _artifact_files(version_dir: Path) -> list[Path]:
    return sorted(p for p in version_dir.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(version_dir: Path, manifest: Manifest) -> Manifest:
    """Record the sha256 of every file in `version_dir`, then write manifest.json (atomically)."""
    files = {p.relative_to(version_dir).as_posix(): sha256_file(p) for p in _artifact_files(version_dir)}
    manifest = manifest.model_copy(update={"files": files})
    _write_text_atomic(version_dir / MANIFEST, manifest.model_dump_json(indent=2))
    return manifest


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def publish(staging_dir: Path, name_dir: Path, version: str) -> Path:
    """Move a finished version into place, then point `latest` at it: readers never see half an artifact."""
    name_dir.mkdir(parents=True, exist_ok=True)
    target = name_dir / version
    suffix = 1
    while target.exists():
        suffix += 1
        target = name_dir / f"{version}-{suffix}"
    if target.name != version:
        # The version string lives in the manifest too: keep them equal.
        manifest = json.loads((staging_dir / MANIFEST).read_text(encoding="utf-8"))
        manifest["version"] = target.name
        _write_text_atomic(staging_dir / MANIFEST, json.dumps(manifest, indent=2))
    os.replace(staging_dir, target)
    _write_text_atomic(name_dir / LATEST, target.name + "\n")
    return target


def resolve_version_dir(path: str | Path) -> Path:
    """A version directory as is; a NAME directory as its latest version."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    latest = path / LATEST
    if latest.is_file():
        version = latest.read_text(encoding="utf-8").strip()
        if not version or "/" in version or version.startswith("."):
            raise ArtifactError(f"{latest}: does not name a version (read {version!r})")
        if not (path / version / MANIFEST).is_file():
            raise ArtifactError(f"{latest} names version {version!r}, but {path / version} holds no {MANIFEST}")
        return path / version
    if not path.exists():
        raise ArtifactError(f"{path}: no such model directory")
    raise ArtifactError(f"{path}: not a model: expected {MANIFEST} (a version) or {LATEST} (a model name)")


def load_manifest(path: str | Path, verify: bool = True) -> tuple[Path, Manifest]:
    """Resolve `path`, parse its manifest, check compatibility and (by default) every file's checksum."""
    version_dir = resolve_version_dir(path)
    manifest_path = version_dir / MANIFEST
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({err})") from err
    if not isinstance(raw, dict):
        raise ArtifactError(f"{manifest_path}: unreadable manifest (not a JSON object)")
    found = raw.get("format_version")
    if found != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: artifact format {found!r}, this code reads format {FORMAT_VERSION}; "
            "retrain or use a matching release"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        raise ArtifactError(f"{manifest_path}: invalid manifest: {err}") from err
    if manifest.normalisation_version != NORMALISATION_VERSION:
        raise ArtifactError(
            f"{manifest_path}: trained with text normalisation v{manifest.normalisation_version}, "
            f"this code implements v{NORMALISATION_VERSION}; retrain the model"
        )
    if verify:
        verify_files(version_dir, manifest)
    return version_dir, manifest


def verify_files(version_dir: Path, manifest: Manifest) -> None:
    """Refuse the artifact when a listed file is missing or its bytes changed."""
    if not manifest.files:
        raise ArtifactError(f"{version_dir}: manifest lists no files")
    for relative, expected in manifest.files.items():
        file = version_dir / relative
        if not file.is_file():
            raise ArtifactError(f"{version_dir}: missing file {relative}")
        if sha256_file(file) != expected:
            raise ArtifactError(f"{version_dir}: checksum mismatch for {relative}: the file is corrupt or was modified")
