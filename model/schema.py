"""Tasks and their labels: the one definition every consumer reads (from a YAML file or a manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Label pairs that mark a boolean task: inputs given as true/false map onto them.
BOOLEAN_LABELS = (("no", "yes"), ("false", "true"))


def label_name(value: Any) -> str:
    """YAML reads bare yes/no as booleans; take them back as the words the author wrote."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class TaskSpec(BaseModel):
    """One classification task: its name, its labels in index order, and what each label means."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    labels: tuple[str, ...]
    description: str = ""
    definitions: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels_are_distinct(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if len(labels) < 2:
            raise ValueError("a task needs at least two labels")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {list(labels)}")
        return labels

    @property
    def is_boolean(self) -> bool:
        return tuple(self.labels) in BOOLEAN_LABELS

    def index(self, label: str) -> int:
        return self.labels.index(label)


class LabelSchema(BaseModel):
    """An ordered set of tasks."""

    model_config = ConfigDict(frozen=True)

    tasks: tuple[TaskSpec, ...]

    @model_validator(mode="after")
    def _names_are_distinct(self) -> LabelSchema:
        names = [t.name for t in self.tasks]
        if not names:
            raise ValueError("a schema needs at least one task")
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be distinct, got {names}")
        return self

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def __getitem__(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"unknown task {name!r}; tasks are {self.names}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @classmethod
    def from_mapping(cls, tasks: dict[str, Any]) -> LabelSchema:
        """Build from the YAML form: {task: {description, labels: [..] or {label: definition}}}."""
        specs = []
        for name, body in tasks.items():
            body = body if isinstance(body, dict) else {"labels": body}
            labels = body.get("labels", [])
            definitions = {label_name(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
            specs.append(
                TaskSpec(
                    name=name,
                    labels=tuple(label_name(label) for label in labels),
                    description=str(body.get("description", "")),
                    definitions=definitions,
                )
            )
        return cls(tasks=tuple(specs))

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabelSchema:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict) or not isinstance(document.get("tasks"), dict):
            raise ValueError(f"{path}: expected a mapping with a 'tasks' mapping")
        return cls.from_mapping(document["tasks"])
