import json
from pathlib import Path

import pytest

from model.artifact import (
    FORMAT_VERSION,
    ArtifactError,
    Manifest,
    load_manifest,
    publish,
    resolve_version_dir,
    write_manifest,
)
from model.schema import TaskSpec
from model.text import NORMALISATION_VERSION


def make_version(root: Path, version: str = "20260101T000000Z") -> Path:
    staging = root / f".staging-{version}"
    staging.mkdir(parents=True)
    (staging / "weights.bin").write_bytes(b"\x00\x01weights")
    (staging / "sub").mkdir()
    (staging / "sub" / "tokenizer.json").write_text("{}")
    manifest = Manifest(
        format_version=FORMAT_VERSION, name="demo", version=version, created_at="2026-01-01T00:00:00+00:00",
        backend="linear", tasks=(TaskSpec(name="t", labels=("a", "b")),),
        normalisation_version=NORMALISATION_VERSION, seed=1,
    )
    write_manifest(staging, manifest)
    return publish(staging, root / "demo", version)


def test_publish_writes_latest_and_manifest_checksums(tmp_path: Path) -> None:
    target = make_version(tmp_path)
    assert (tmp_path / "demo" / "latest").read_text().strip() == target.name
    version_dir, manifest = load_manifest(tmp_path / "demo")
    assert version_dir == target
    assert set(manifest.files) == {"weights.bin", "sub/tokenizer.json"}


def test_same_version_twice_gets_a_suffix_and_latest_follows(tmp_path: Path) -> None:
    first = make_version(tmp_path)
    second = make_version(tmp_path)
    assert second.name == f"{first.name}-2"
    assert resolve_version_dir(tmp_path / "demo") == second
    assert load_manifest(second)[1].version == second.name


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    target = make_version(tmp_path)
    (target / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"checksum mismatch for weights\.bin"):
        load_manifest(target)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    target = make_version(tmp_path)
    (target / "sub" / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match=r"missing file sub/tokenizer\.json"):
        load_manifest(target)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format_version", FORMAT_VERSION + 1, "artifact format"),
        ("normalisation_version", NORMALISATION_VERSION + 1, "normalisation"),
        ("backend", "quantum", "invalid manifest"),
    ],
)
def test_incompatible_manifest_is_refused(tmp_path: Path, field: str, value, message: str) -> None:
    target = make_version(tmp_path)
    raw = json.loads((target / "manifest.json").read_text())
    raw[field] = value
    (target / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=message):
        load_manifest(target)


def test_unreadable_manifest(tmp_path: Path) -> None:
    target = make_version(tmp_path)
    (target / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        load_manifest(target)


def test_resolution_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such model directory"):
        resolve_version_dir(tmp_path / "absent")
    with pytest.raises(ArtifactError, match="not a model"):
        resolve_version_dir(tmp_path)
    (tmp_path / "latest").write_text("20990101T000000Z\n")
    with pytest.raises(ArtifactError, match=r"holds no manifest\.json"):
        resolve_version_dir(tmp_path)
    (tmp_path / "latest").write_text("../../etc\n")
    with pytest.raises(ArtifactError, match="does not name a version"):
        resolve_version_dir(tmp_path)
