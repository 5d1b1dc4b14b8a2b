"""Load and validate the workflow configuration (one schema for Snakemake and the CLI)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(Draft202012Validator)


def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of `config` with defaults filled in, or raise ConfigError."""
    config = copy.deepcopy(config) if config else {}
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors:
            where = [str(p) for p in err.path]
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                for extra in sorted(set(err.instance) - set(allowed)):
                    lines.append(f"  {'.'.join([*where, extra])}: unknown key; valid here: "
                                 f"{', '.join(allowed)}")
                continue
            lines.append(f"  {'.'.join(where) or '(top level)'}: {err.message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return config


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    for key, value in (overrides or {}).items():
        config[key] = value
    return validate(config)


def seeds_for(config: dict[str, Any], paper: str) -> list[int] | None:
    """The seeds the (validated) config asks for a paper: a count n means 0..n-1; None when
    the paper keeps its own seeds for the scale."""
    chosen = config.get("seeds", {}).get(paper)
    if chosen is None:
        return None
    return list(range(chosen)) if isinstance(chosen, int) else sorted(chosen)
