"""One way to report an invalid YAML document (config or policy): the file, then one line per field."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(source: str, kind: str, err: ValidationError) -> str:
    """'FILE: invalid KIND' followed by "  field 'a.b': what is wrong" for every problem pydantic found."""
    lines = [f"{source}: invalid {kind}"]
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown field (not allowed; check the spelling)"
        lines.append(f"  field '{where}': {message}" if where else f"  {message}")
    return "\n".join(lines)
