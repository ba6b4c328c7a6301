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
(the output projection stays tied to the word embeddings), which is why the loss starts high. Such a head first
trains alone for `head_warmup_steps` (default 200) with the encoder frozen, so that its random gradients do not
disturb the encoder; on MiniLM, 40 head-only steps take the held-out loss from 10.9 to 7.2.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedModel,
    get_linear_schedule_with_warmup,
)

from model.text import normalise
from training.batching import LengthGroupedBatchSampler
from training.config import AdaptConfig, AdaptParams, ConfigError
from training.distill import load_unlabelled, read_excluded
from training.transformer import parameter_groups, resolve_encoder

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


def loss_text(loss: float | None) -> str:
    """A held-out loss for the log; None when nothing was held out (adapt.heldout_texts: 0) or nothing masked."""
    return "not measured (no held-out tokens)" if loss is None else f"{loss:.3f}"


DEFAULT_HEAD_WARMUP_STEPS = 200  # for a checkpoint without an MLM head (its head starts random)


@dataclass
class AdaptTexts:
    """Token ids of the training and held-out texts, and what was read and kept out."""

    train: list[list[int]]
    heldout: list[list[int]]
    unlabelled: dict[str, Any]
    excluded: list[dict[str, Any]]


def prepare_texts(config: AdaptConfig, tokenizer: Any, log: Callable[[str], None]) -> AdaptTexts:
    """The unlabelled texts less every evaluation text and repeat, normalised, shuffled (seeded), split into training
    and held-out texts, and tokenised."""
    params = config.adapt
    held_out, excluded = read_excluded(config.exclude, log)
    examples, report = load_unlabelled(config.unlabelled, held_out, [], log)
    if len(examples) <= params.heldout_texts:
        raise ConfigError(f"{len(examples)} unlabelled texts are left after the overlap rule; more than "
                          f"{params.heldout_texts} (adapt.heldout_texts) are needed")
    texts = [normalise(e.post.text) for e in examples]
    random.Random(config.seed).shuffle(texts)
    heldout, train = texts[: params.heldout_texts], texts[params.heldout_texts :]

    def ids(rows: list[str]) -> list[list[int]]:
        return tokenizer(rows, truncation=True, max_length=params.max_length)["input_ids"] if rows else []

    return AdaptTexts(train=ids(train), heldout=ids(heldout), unlabelled=report, excluded=excluded)


def load_mlm_model(encoder_path: Path, head_warmup_steps: int | None) -> tuple[PreTrainedModel, int]:
    """The encoder with its MLM head (initialised fresh, tied to the word embeddings, when the checkpoint lacks one),
    and the head warm-up steps to use."""
    model, info = AutoModelForMaskedLM.from_pretrained(encoder_path, output_loading_info=True)
    prefix = model.base_model_prefix + "."
    fresh_head = any(not key.startswith(prefix) for key in info["missing_keys"])
    if head_warmup_steps is None:
        head_warmup_steps = DEFAULT_HEAD_WARMUP_STEPS if fresh_head else 0
    return model, head_warmup_steps


def mlm_optimizer(model: PreTrainedModel, params: AdaptParams) -> torch.optim.Optimizer:
    """AdamW: the encoder (with the tied word embeddings) at `learning_rate`, the head's own layers at
    `head_learning_rate`."""
    prefix = model.base_model_prefix + "."

    def learning_rate(name: str) -> float:
        return params.learning_rate if name.startswith(prefix) else params.head_learning_rate

    return torch.optim.AdamW(parameter_groups(model.named_parameters(), learning_rate, params.weight_decay))


def freeze_encoder(model: PreTrainedModel, frozen: bool) -> None:
    for parameter in model.base_model.parameters():
        parameter.requires_grad_(not frozen)


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
    encoder_path = resolve_encoder(params.encoder)
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    texts = prepare_texts(config, tokenizer, log)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=params.mlm_probability,
                                               return_tensors="pt")

    torch.manual_seed(config.seed)
    model, head_warmup = load_mlm_model(encoder_path, params.head_warmup_steps)
    steps_per_epoch = -(-len(texts.train) // params.batch_size)
    total_steps = min(params.max_steps or steps_per_epoch * params.epochs, steps_per_epoch * params.epochs)
    optimizer = mlm_optimizer(model, params)
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
        state["loss_before"] = mlm_loss(model, collator, texts.heldout, config.seed)
        log(f"held-out MLM loss before: {loss_text(state['loss_before'])} on {len(texts.heldout)} texts")
    log(f"adapting {params.encoder} on {len(texts.train)} texts: {total_steps} steps of {params.batch_size}"
        + (f", the first {head_warmup} training the MLM head alone" if head_warmup else ""))

    started = time.perf_counter() - state["seconds"]
    model.train()
    progress = tqdm(total=total_steps, initial=state["step"], desc="mlm", unit="step")
    # Batches of similar length (as in fine-tuning: less padding), in an order fixed by (seed, epoch) for --resume.
    sampler = LengthGroupedBatchSampler([len(ids) for ids in texts.train], params.batch_size, config.seed)
    while state["step"] < total_steps:
        epoch, offset = divmod(state["step"], steps_per_epoch)
        sampler.set_epoch(epoch)
        for batch_rows in list(sampler)[offset:]:
            freeze_encoder(model, frozen=state["step"] < head_warmup)
            batch = collator([{"input_ids": texts.train[i]} for i in batch_rows])
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
    freeze_encoder(model, frozen=False)
    loss_after = mlm_loss(model, collator, texts.heldout, config.seed)
    log(f"held-out MLM loss after: {loss_text(loss_after)} (before {loss_text(state['loss_before'])})")
    record = {
        "name": config.name,
        "base_encoder": params.encoder,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": params.model_dump(mode="json") | {"seed": config.seed, "head_warmup_steps": head_warmup},
        "steps": state["step"],
        "texts": {"train": len(texts.train), "heldout": len(texts.heldout)},
        "heldout_mlm_loss": {"before": state["loss_before"], "after": loss_after},
        "train_loss_last_100": float(np.mean(state["losses"][-100:])),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "unlabelled": texts.unlabelled,
        "excluded": texts.excluded,
    }
    _publish(model, encoder_path, tokenizer, record, out)
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


def _publish(model: PreTrainedModel, encoder_path: Path, tokenizer: Any, record: dict[str, Any], out: Path) -> None:
    """Write the encoder alone (no MLM head: what transformer.encoder loads), its tokenizer and the record, then
    rename the staging directory into place.

    The adapted weights go into the original encoder, so that weights the MLM model lacks (BERT's pooler) are kept
    as they were instead of being initialised at random when the encoder is loaded."""
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    encoder = AutoModel.from_pretrained(encoder_path)
    unexpected = encoder.load_state_dict(model.base_model.state_dict(), strict=False).unexpected_keys
    if unexpected:
        raise RuntimeError(f"the adapted weights do not fit {encoder_path}: {unexpected[:5]}")
    encoder.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


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
