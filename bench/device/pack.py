"""Pack what a GPU machine of the `device` tool needs for `bench/device/sweep.sh` into `.gpu/` (not committed).

    .venv/bin/python bench/device/pack.py        # then: device run, carry [".gpu"], bench/device/sweep.sh
    python3 bench/device/pack.py --widen DIR     # there (sweep.sh does it): the carried encoder as fp32 in DIR

The device machine has its own Python (3.12, with torch and transformers) but no network, and one call may carry at
most 64 MiB. So this packs:
- `.gpu/whl/`: wheels of the packages the training path imports that its image lacks (pydantic, emoji, ...);
- `.gpu/encoder/`: the bundled all-MiniLM-L6-v2 with its weights stored as fp16 (45 MB instead of 91 MB: the fp32
  file alone is over the limit). The device script widens them back to fp32 before training, so the run starts
  from the default encoder rounded to fp16 (relative error under 1e-3), `models/encoders/minilm-fp16` in the rows;
- `.gpu/data.tar.xz`: the shared files the rows read (TweetEval sentiment's parquet splits, the complaints CSV).
  Third-party text: `.gpu/` must be ignored through `.git/info/exclude` (checked), is never committed, and can be
  deleted after the run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / ".gpu"
LIMIT = 64 * 2**20
# The training path's imports that the device image (Python 3.12) lacks, at this project's pinned versions.
WHEELS = ["pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
          "typing-extensions==4.16.0", "emoji==2.16.0"]
DATA = ["tweeteval/sentiment/hf_parquet", "complaints_preotiuc2019/complaints-data.csv"]


def ignored_by_git() -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", str(OUT)], cwd=ROOT)
    return done.returncode == 0


def pack_wheels() -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(OUT / "whl"), *WHEELS], check=True)


def copy_encoder(source: Path, target: Path, dtype: str) -> None:
    """The checkpoint in `source` (config, tokenizer, model.safetensors) copied to `target` with its weights cast."""
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix in {".json", ".txt"}:
            shutil.copy2(path, target / path.name)
    weights = load_file(source / "model.safetensors")
    cast = getattr(torch, dtype)
    save_file({name: tensor.to(cast).contiguous() for name, tensor in weights.items()}, target / "model.safetensors")


def pack_encoder() -> None:
    from training.transformer import resolve_encoder

    copy_encoder(Path(resolve_encoder("all-MiniLM-L6-v2")), OUT / "encoder", "float16")


def pack_data() -> None:
    from training.paths import shared_data_dir

    shared = shared_data_dir()
    with tarfile.open(OUT / "data.tar.xz", "w:xz") as archive:
        for relative in DATA:
            archive.add(shared / relative, arcname=relative)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widen", type=Path, metavar="DIR", help="write the packed encoder to DIR as fp32, and stop")
    args = parser.parse_args(argv)
    if args.widen:
        copy_encoder(OUT / "encoder", args.widen, "float32")
        return
    OUT.mkdir(exist_ok=True)
    if not ignored_by_git():
        sys.exit(f"{OUT} is not ignored by git: add '/.gpu/' to .git/info/exclude first (it holds third-party text)")
    pack_wheels()
    pack_encoder()
    pack_data()
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {size / 2**20:.1f} MiB (one device call carries at most {LIMIT / 2**20:.0f} MiB with the repo)")


if __name__ == "__main__":
    main()
