"""Where the project's own files and the shared datasets live (both overridable)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA = PROJECT_ROOT / "data" / "labels.yaml"


def shared_data_dir() -> Path:
    """`TRIAGE_SHARED_DATA`, else `../shared/data` beside the project root."""
    configured = os.environ.get("TRIAGE_SHARED_DATA")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"
