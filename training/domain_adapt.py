"""`triage-train adapt`: continued masked-language-model training of an encoder on unlabelled in-domain text.

Domain adaptation (Gururangan et al., 2020, "Don't Stop Pretraining"): the encoder keeps learning the language of
tweets before it is fine-tuned. The texts come from `unlabelled` files; every text that is also in an `exclude` file
(the evaluation sets of the benchmarks the encoder will be scored on) is dropped and reported, as are repeats. A
slice of the remaining texts is held out to measure the MLM loss before and after, so a run says whether it fitted
the domain.

The result is a plain encoder directory (weights, config, tokenizer, and `adaptation.json` recording the data and
the losses) that any training config names as `transformer.encoder`. Checkpoints are written every
`checkpoint_steps` optimiser steps; `--resume` continues from the last one (batches are length-grouped in a seeded
order, so the remaining batches of the epoch are the same; the masks drawn after resuming differ from an
uninterrupted run's).

Sentence-transformers checkpoints such as all-MiniLM-L6-v2 ship without their MLM head: it is initialised fresh
(the output projection stays tied to the word embeddings), which is why the loss starts high and falls quickly.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedModel,
    get_linear_schedule_with_warmup,
)

from model.text import normalise
from training.batching import LengthGroupedBatchSampler
from training.config import AdaptConfig, ConfigError
from training.distill import load_unlabelled, read_excluded
from training.transformer import resolve_encoder

STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoint"
RECORD_FILE = "adaptation.json"


def masked_token_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Cross-entropy over the masked positions only, and their count.

    The MLM head's output layer spans the whole vocabulary (30,522 x 384 for MiniLM): applying it to the ~15%
    masked positions instead of every position is most of the step's time saved on a CPU.
    """
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    selected = batch["labels"] != -100
    if not selected.any():  # possible for a batch of a few short texts: nothing to learn, and no NaN
        return hidden.sum() * 0.0, 0
    head = model.cls if hasattr(model, "cls") else model.lm_head  # BERT-style, RoBERTa-style
    logits = head(hidden[selected])
    return torch.nn.functional.cross_entropy(logits, batch["labels"][selected]), int(selected.sum())


@torch.inference_mode()
def mlm_loss(model: PreTrainedModel, collator: DataCollatorForLanguageModeling, rows: list[list[int]],
             seed: int, batch_size: int = 64) -> float | None:
    """Mean masked-token loss on `rows` with masks drawn from a fixed seed (the same masks before and after)."""
    if not rows:
        return None
    model.eval()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = collator([{"input_ids": ids} for ids in rows[start : start + batch_size]])
        loss, masked = masked_token_loss(model, batch)
        if masked:
            total += float(loss) * masked
            tokens += masked
    torch.random.set_rng_state(generator_state)
    model.train()
    return total / tokens if tokens else None


def run_adapt(config: AdaptConfig, output_root: Path, resume: bool = False,
              log: Callable[[str], None] = print) -> Path:
    """Adapt the encoder and write it to OUTPUT_ROOT/NAME; returns that directory."""
    params = config.adapt
    out = output_root / config.name
    run_dir = out.with_name(f".{config.name}.run")
    stopped = (run_dir / CHECKPOINT_DIR / STATE_FILE).is_file()
    if out.exists() and not (resume and stopped):
        raise ConfigError(f"{out} exists" + ("" if not resume else " and no stopped run of it is left to resume")
                          + ": choose another name, or delete it first")
    held_out, excluded = read_excluded(config.exclude, log)
    examples, report = load_unlabelled(config.unlabelled, held_out, [], log)
    if len(examples) <= params.heldout_texts:
        raise ConfigError(f"{len(examples)} unlabelled texts are left after the overlap rule; more than "
                         f"{params.heldout_texts} (adapt.heldout_texts) are needed")

    encoder_path = resolve_encoder(params.encoder)
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    texts = [normalise(e.post.text) for e in examples]
    random.Random(config.seed).shuffle(texts)
    heldout_texts, train_texts = texts[: params.heldout_texts], texts[params.heldout_texts :]
    encoded = tokenizer(train_texts, truncation=True, max_length=params.max_length)["input_ids"]
    heldout = tokenizer(heldout_texts, truncation=True, max_length=params.max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=params.mlm_probability,
                                               return_tensors="pt")

    torch.manual_seed(config.seed)
    model = AutoModelForMaskedLM.from_pretrained(encoder_path)  # a missing MLM head is initialised fresh, tied
    steps_per_epoch = -(-len(encoded) // params.batch_size)
    total_steps = min(params.max_steps or steps_per_epoch * params.epochs, steps_per_epoch * params.epochs)
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=params.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(params.warmup_ratio * total_steps), total_steps)

    state: dict[str, Any] = {"step": 0, "losses": [], "seconds": 0.0}
    checkpoint = run_dir / CHECKPOINT_DIR
    if resume and stopped:
        state = json.loads((checkpoint / STATE_FILE).read_text())
        saved = torch.load(checkpoint / "training.pt", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        log(f"resuming {run_dir} at step {state['step']} of {total_steps}")
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if "loss_before" not in state:
        state["loss_before"] = mlm_loss(model, collator, heldout, config.seed)
        log(f"held-out MLM loss before: {state['loss_before']:.3f} on {len(heldout)} texts")
    log(f"adapting {params.encoder} on {len(encoded)} texts: {total_steps} steps of {params.batch_size}")

    started = time.perf_counter() - state["seconds"]
    model.train()
    progress = tqdm(total=total_steps, initial=state["step"], desc="mlm", unit="step")
    # Batches of similar length (as in fine-tuning: less padding), in an order fixed by (seed, epoch) for --resume.
    sampler = LengthGroupedBatchSampler([len(ids) for ids in encoded], params.batch_size, config.seed)
    while state["step"] < total_steps:
        epoch, offset = divmod(state["step"], steps_per_epoch)
        sampler.set_epoch(epoch)
        for batch_rows in list(sampler)[offset:]:
            batch = collator([{"input_ids": encoded[i]} for i in batch_rows])
            loss, _masked = masked_token_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            state["step"] += 1
            state["losses"].append(round(loss.item(), 4))
            progress.update()
            progress.set_postfix(loss=f"{np.mean(state['losses'][-50:]):.3f}")
            if state["step"] % params.checkpoint_steps == 0 or state["step"] == total_steps:
                state["seconds"] = time.perf_counter() - started
                _checkpoint(run_dir, model, optimizer, scheduler, state)
            if state["step"] >= total_steps:
                break
    progress.close()
    loss_after = mlm_loss(model, collator, heldout, config.seed)
    log(f"held-out MLM loss after: {loss_after:.3f} (before {state['loss_before']:.3f})")

    staging = out.with_name(f".{config.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.base_model.save_pretrained(staging)  # the encoder alone (no MLM head): what transformer.encoder loads
    tokenizer.save_pretrained(staging)
    record = {
        "name": config.name,
        "base_encoder": params.encoder,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": params.model_dump(mode="json") | {"seed": config.seed},
        "steps": state["step"],
        "texts": {"train": len(encoded), "heldout": len(heldout)},
        "heldout_mlm_loss": {"before": state["loss_before"], "after": loss_after},
        "train_loss_last_100": float(np.mean(state["losses"][-100:])),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "unlabelled": report,
        "excluded": excluded,
    }
    (staging / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


def _checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict[str, Any]) -> None:
    """Write the checkpoint (weights, optimiser, schedule, step) beside the old one, then swap."""
    fresh = run_dir / f"{CHECKPOINT_DIR}.new"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, fresh / "training.pt")
    (fresh / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    fresh.rename(run_dir / CHECKPOINT_DIR)
