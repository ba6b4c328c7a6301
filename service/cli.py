"""`triage-serve`: run the prediction service with uvicorn.

Every option is also an environment variable (TRIAGE_MODEL, TRIAGE_PORT, TRIAGE_API_KEYS, ...). The options are
handed to the app through those variables, so that with --workers N each worker process builds the same app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from model.artifact import ArtifactError, load_manifest
from service.settings import Settings

app = typer.Typer(add_completion=False, help="Serve a Tweet Triage model over HTTP.")
console = Console(stderr=True, soft_wrap=True)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's own logs plus ours; access lines are JSON from our middleware (uvicorn's access log is off)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json_line": {"format": "%(message)s"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "json_line", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper()},
            "triage.service": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "triage.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
        },
    }


@app.command()
def serve(
    model: Annotated[Path | None, typer.Option(help="version or NAME directory [env TRIAGE_MODEL]")] = None,
    port: Annotated[int | None, typer.Option(help="[env TRIAGE_PORT, default 8000]")] = None,
    host: Annotated[str | None, typer.Option(help="bind address [env TRIAGE_HOST, default 127.0.0.1]")] = None,
    workers: Annotated[int | None, typer.Option(help="processes; each watches `latest` [env TRIAGE_WORKERS]")] = None,
    policy: Annotated[Path | None, typer.Option(help="priority policy YAML [env TRIAGE_POLICY]")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, torch, onnx-fp32, onnx-int8 [env TRIAGE_BACKEND]")] = None,
) -> None:
    """Start the service. Other settings (keys, limits, batching, cache) come from TRIAGE_* variables."""
    given = {"model": model, "port": port, "host": host, "workers": workers, "policy": policy, "backend": backend}
    for name, value in given.items():
        if value is not None:
            os.environ[f"TRIAGE_{name.upper()}"] = str(value)
    try:
        settings = Settings()
        version_dir, manifest = load_manifest(settings.model)
    except (ValidationError, ArtifactError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(code=2) from err
    exported = (getattr(manifest, "onnx", None) or {}).get("files", {})
    console.print(f"model {manifest.name} {manifest.version} ({manifest.backend}; ONNX: {sorted(exported) or 'none'})"
                  f" from {version_dir}", highlight=False)
    if settings.open_mode:
        console.print(f"[bold yellow]OPEN MODE[/]: no API keys (set TRIAGE_API_KEYS); anyone who can reach "
                      f"{settings.bind_host}:{settings.port} may call every endpoint, admin included.")
    uvicorn.run(
        "service.app:create_app", factory=True, host=settings.bind_host, port=settings.port,
        workers=settings.workers, log_config=log_config(settings.log_level), access_log=False,
        timeout_graceful_shutdown=15, loop="uvloop", http="httptools",
    )


def main() -> None:  # pragma: no cover
    app(prog_name="triage-serve")


if __name__ == "__main__":  # pragma: no cover
    main()
