"""Inbox ingest rate: posts/s stored through `POST /v1/inbox/posts`, on SQLite and PostgreSQL. Run on an idle machine.

    .venv/bin/python bench/inbox_ingest.py [--model models/triage-default-student] [--seconds 10]

For each database, one fresh `triage-serve` process with a fresh, empty database is driven by the load benchmark's
async client (bench/load.py) with 32-post requests of unique texts at concurrency 1 and 16. The same server's
`/v1/classify` (scoring without storing) is measured in the same run, so the ratio shows what storage costs.
Writes bench/results/inbox_ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench.load import Texts, drive, start  # noqa: E402
from service.inbox.db import normalise_url  # noqa: E402
from service.inbox.tables import Item  # noqa: E402

POSTGRES_ADMIN = os.environ.get("TRIAGE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SCENARIOS = ((1, 32), (16, 32))


def stored(database_url: str) -> int:
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(Item)).scalar_one()
    engine.dispose()
    return count


def measure(database: str, database_url: str, model: Path, seconds: float, scratch: Path) -> dict:
    env = {"TRIAGE_MODEL": str(model), "TRIAGE_DATABASE_URL": database_url, "TRIAGE_WATCH_SECONDS": "0"}
    process, url = start([sys.executable, "-m", "service.cli"], env, scratch / f"{database}.log")
    try:
        rows = {}
        for concurrency, size in SCENARIOS:
            key = f"{concurrency}x{size}"
            prefix = f"{key}-"
            ingest = asyncio.run(drive(url, concurrency, size, seconds, Texts(), "/v1/inbox/posts", prefix))
            classify = asyncio.run(drive(url, concurrency, size, seconds, Texts()))
            rows[key] = {"ingest": ingest, "classify": classify,
                         "ingest_over_classify": ingest["posts_per_s"] / classify["posts_per_s"]}
            print(f"{database:10s} {key:6s} ingest {ingest['posts_per_s']:7.1f} posts/s "
                  f"(p50 {ingest['p50_ms']:.0f} ms, p99 {ingest['p99_ms']:.0f} ms, errors {ingest['errors']})  "
                  f"classify {classify['posts_per_s']:7.1f} posts/s  ratio {rows[key]['ingest_over_classify']:.2f}",
                  flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"scenarios": rows, "rows_stored": stored(database_url)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "triage-default-student")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "inbox_ingest.json")
    args = parser.parse_args()
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "model": str(args.model),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "seconds_per_scenario": args.seconds, "databases": {}}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        results["databases"]["sqlite"] = measure("sqlite", f"sqlite:///{scratch}/inbox.sqlite3", args.model,
                                                 args.seconds, scratch)
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"triage_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            results["databases"]["postgresql"] = measure("postgresql", url, args.model, args.seconds, scratch)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
