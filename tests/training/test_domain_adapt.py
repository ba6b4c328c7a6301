"""`triage-train adapt` (continued MLM training) on a tiny random BERT and the project's own tiny texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoModel, BertForMaskedLM

from tests.cli_helpers import triage_train
from tests.posts_factory import make_posts, write_jsonl
from training import domain_adapt
from training.config import AdaptConfig, load_config


def write_adapt_config(tmp_path: Path, encoder: Path, **adapt) -> Path:
    rows = make_posts(copies=6)
    unlabelled = write_jsonl(tmp_path / "unlabelled.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
    evaluation = write_jsonl(tmp_path / "evaluation.jsonl", rows[:5])  # five texts that must never be trained on
    config = {
        "name": "tiny-adapted", "seed": 3,
        "unlabelled": [{"path": str(unlabelled), "license": "test-own"}],
        "exclude": [{"path": str(evaluation)}],
        "adapt": {"encoder": str(encoder), "batch_size": 8, "learning_rate": 2e-3, "max_length": 32,
                  "heldout_texts": 10, "checkpoint_steps": 4, "epochs": 3, "warmup_ratio": 0.0, **adapt},
    }
    path = tmp_path / "adapt.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_adapt_writes_an_encoder_that_learned_the_texts_and_kept_evaluation_out(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    config = write_adapt_config(tmp_path, tiny_encoder, head_warmup_steps=2)
    result = triage_train("adapt", "--config", config, "--output", tmp_path / "encoders")
    assert result.exit_code == 0, result.output
    assert "the first 2 training the MLM head alone" in result.output
    out = tmp_path / "encoders" / "tiny-adapted"
    record = json.loads((out / "adaptation.json").read_text())
    assert record["settings"]["head_warmup_steps"] == 2
    rows = len(make_posts(copies=6))
    assert record["unlabelled"]["overlap_removed"]["dropped"] == 5
    assert record["texts"] == {"train": rows - 5 - 10, "heldout": 10}
    loss = record["heldout_mlm_loss"]
    assert loss["after"] < loss["before"] - 0.5  # a fresh MLM head on 30k tokens: the held-out loss must fall
    assert "held-out MLM loss" in result.output and f"transformer.encoder={out}" in result.output
    assert not (tmp_path / "encoders" / ".tiny-adapted.run").exists()

    adapted = AutoModel.from_pretrained(out)  # what transformer.encoder loads
    base = load_file(str(tiny_encoder / "model.safetensors"))
    changed = adapted.state_dict()["encoder.layer.0.attention.self.query.weight"].numpy()
    assert not np.allclose(changed, base["encoder.layer.0.attention.self.query.weight"])

    again = triage_train("adapt", "--config", config, "--output", tmp_path / "encoders")
    assert again.exit_code == 2 and "exists" in again.output
    finished = triage_train("adapt", "--config", config, "--output", tmp_path / "encoders", "--resume")
    assert finished.exit_code == 2 and "no stopped run of it is left to resume" in finished.output


def test_a_fresh_mlm_head_first_trains_alone_with_the_encoder_frozen(tiny_encoder: Path, tmp_path: Path) -> None:
    # tiny_encoder has no MLM head: by default its head trains alone for 200 steps, more than this whole run. A random
    # encoder's states carry little, so the head learns mostly its bias here: a higher rate than the default.
    config = load_config(write_adapt_config(tmp_path, tiny_encoder, head_learning_rate=0.05), kind=AdaptConfig)
    out = domain_adapt.run_adapt(config, tmp_path / "encoders", log=lambda _: None)
    record = json.loads((out / "adaptation.json").read_text())
    assert record["settings"]["head_warmup_steps"] == 200 and record["steps"] < 200
    assert record["heldout_mlm_loss"]["after"] < record["heldout_mlm_loss"]["before"] - 0.5  # the head learned
    base = load_file(str(tiny_encoder / "model.safetensors"))
    adapted = load_file(str(out / "model.safetensors"))
    assert set(adapted) == set(base)  # the pooler, which the MLM model lacks, is kept from the original
    for key, value in adapted.items():
        np.testing.assert_array_equal(value, base[key], err_msg=key)  # the encoder did not move


def test_a_checkpoint_with_its_mlm_head_needs_no_head_warmup(tiny_encoder: Path, tmp_path: Path) -> None:
    with_head = tmp_path / "with-head"
    BertForMaskedLM(AutoConfig.from_pretrained(tiny_encoder)).save_pretrained(with_head)
    assert domain_adapt.load_mlm_model(with_head, None)[1] == 0
    assert domain_adapt.load_mlm_model(tiny_encoder, None)[1] == domain_adapt.DEFAULT_HEAD_WARMUP_STEPS
    assert domain_adapt.load_mlm_model(tiny_encoder, 7)[1] == 7


def test_an_interrupted_adaptation_resumes_from_its_last_checkpoint(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_adapt_config(tmp_path, tiny_encoder, head_warmup_steps=2), kind=AdaptConfig)
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def crash_at_step_6(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        domain_adapt.run_adapt(config, tmp_path / "encoders", log=lambda _: None)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    state = json.loads((tmp_path / "encoders" / ".tiny-adapted.run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4  # the checkpoint after step 4; step 5 is redone

    messages: list[str] = []
    out = domain_adapt.run_adapt(config, tmp_path / "encoders", resume=True, log=messages.append)
    record = json.loads((out / "adaptation.json").read_text())
    steps_per_epoch = -(-record["texts"]["train"] // 8)
    assert record["steps"] == 3 * steps_per_epoch
    assert any("resuming" in m and "at step 4" in m for m in messages)


def test_publishing_refuses_adapted_weights_that_do_not_fit_the_encoder(tiny_encoder: Path, tmp_path: Path) -> None:
    config = AutoConfig.from_pretrained(tiny_encoder)
    config.num_hidden_layers += 1  # one layer more than the encoder it claims to adapt
    with pytest.raises(RuntimeError, match="do not fit"):
        domain_adapt._publish(BertForMaskedLM(config), tiny_encoder, tokenizer=None, record={},
                              out=tmp_path / "adapted")
    assert not (tmp_path / "adapted").exists()


def test_adapt_without_held_out_texts_records_no_loss(tiny_encoder: Path, tmp_path: Path) -> None:
    config = write_adapt_config(tmp_path, tiny_encoder, heldout_texts=0, epochs=1)
    result = triage_train("adapt", "--config", config, "--output", tmp_path / "encoders")
    assert result.exit_code == 0, result.output
    assert "held-out MLM loss before: not measured (no held-out tokens) on 0 texts" in result.output
    record = json.loads((tmp_path / "encoders" / "tiny-adapted" / "adaptation.json").read_text())
    assert record["heldout_mlm_loss"] == {"before": None, "after": None}
