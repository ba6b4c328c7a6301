"""What made an artifact: package versions and the git commit."""

from __future__ import annotations

import subprocess
from importlib import metadata

from training.paths import PROJECT_ROOT

RECORDED_PACKAGES = (
    "tweet-triage", "torch", "transformers", "tokenizers", "accelerate", "scikit-learn", "numpy", "joblib", "emoji",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """HEAD of the project checkout, with '-dirty' when it has uncommitted changes; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
