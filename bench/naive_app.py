"""The naive baseline of bench/load.py: what a user would write by hand.

A plain FastAPI `def` endpoint running the same encoder and heads in eager PyTorch fp32 (2 threads), one post at a
time, with no batching, no cache and no ONNX. Run: NAIVE_MODEL=models/triage-default-student uvicorn bench.naive_app:app
"""

from __future__ import annotations

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoTokenizer

from model.artifact import ENCODER_DIR, load_manifest
from model.calibration import softmax
from model.multitask import MultiTaskModel
from model.text import normalise

torch.set_num_threads(2)
version_dir, manifest = load_manifest(os.environ.get("NAIVE_MODEL", "models/triage-default-student"))
tokenizer = AutoTokenizer.from_pretrained(version_dir / ENCODER_DIR)
network = MultiTaskModel.load(version_dir, {t.name: len(t.labels) for t in manifest.tasks},
                              pooling=(manifest.encoder or {}).get("pooling", "mean"))
app = FastAPI()


class Post(BaseModel):
    id: str
    text: str


class Body(BaseModel):
    posts: list[Post]


@app.post("/v1/classify")
def classify(body: Body) -> dict:
    results = []
    for post in body.posts:
        inputs = tokenizer(normalise(post.text), truncation=True, max_length=manifest.max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = network(inputs["input_ids"], inputs["attention_mask"])
        labels = {}
        for task in manifest.tasks:
            probs = softmax(logits[task.name].numpy(), manifest.calibration.get(task.name, 1.0))[0]
            labels[task.name] = task.labels[int(probs.argmax())]
        results.append({"id": post.id, "labels": labels})
    return {"results": results}
