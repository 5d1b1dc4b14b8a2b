"""Load and validate the workflow configuration (one schema for Snakemake and the CLI)."""

from __future__ import annotations

import copy
import functools
import re
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


@functools.lru_cache(maxsize=1)
def _parsed_schema() -> dict[str, Any]:
    """The central schema with each paper package's part composed in: its key in `papers`,
    its seeds, and its options (the paper's own options.schema.yaml)."""
    from clrepro.papers import registry

    sch = yaml.safe_load(SCHEMA_PATH.read_text())
    papers = registry()
    props = sch["properties"]
    props["papers"]["items"]["enum"] = list(papers)
    props["papers"]["default"] = list(papers)
    props["seeds"]["properties"] = {key: sch["$defs"]["seeds"] for key in papers}
    props["options"]["properties"] = {
        key: {"type": "object", "additionalProperties": False, "default": {},
              "properties": paper.options_schema()} for key, paper in papers.items()}
    return sch


def schema() -> dict[str, Any]:
    """The config schema (a copy: parsed once per process, planning validates often)."""
    return copy.deepcopy(_parsed_schema())


_TRUE, _FALSE, _NULL = ("true",), ("false",), ("null", "~")


def _types(sch: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema accepts, over its oneOf/anyOf alternatives."""
    kinds = sch.get("type", [])
    found = set([kinds] if isinstance(kinds, str) else kinds)
    for alt in sch.get("oneOf", []) + sch.get("anyOf", []):
        found |= _types(alt)
    return found


def _alternative(sch: dict[str, Any], kind: str) -> dict[str, Any]:
    """The part of `sch` that describes values of JSON type `kind`."""
    for alt in sch.get("oneOf", []) + sch.get("anyOf", []):
        if kind in _types(alt):
            return alt
    return sch


def coerce(value: Any, sch: dict[str, Any]) -> Any:
    """`value` with strings turned into the integer, number, boolean or null the schema asks
    for where a string is not allowed there. Snakemake's `--config key=value` parses nested
    values as strings (`--config 'seeds={gem2017: 3}'` gives {'gem2017': '3'}), so that
    every key can be set from the command line as the README and messages show."""
    if isinstance(value, dict):
        sch = _alternative(sch, "object")
        props = sch.get("properties", {})
        extra = sch.get("additionalProperties")
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
                for k, v in value.items()}
    if isinstance(value, list):
        return [coerce(v, _alternative(sch, "array").get("items", {})) for v in value]
    if not isinstance(value, str):
        return value
    kinds = _types(sch)
    if not kinds or "string" in kinds:
        return value
    text = value.strip()
    if "integer" in kinds and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if "number" in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in kinds and text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    if "null" in kinds and text.lower() in _NULL:
        return None
    return value


def _rule(sch: dict[str, Any], plural: bool = False) -> str:
    """A short statement of what a (sub)schema accepts, for error messages."""
    if "oneOf" in sch or "anyOf" in sch:
        return " or ".join(_rule(alt, plural) for alt in sch.get("oneOf", []) + sch.get("anyOf", []))
    kind = sch.get("type", "value")
    if "enum" in sch:
        return "one of " + ", ".join(map(str, sch["enum"]))
    bits = []
    if "minimum" in sch:
        bits.append(f">= {sch['minimum']}")
    if "exclusiveMinimum" in sch:
        bits.append(f"> {sch['exclusiveMinimum']}")
    if "maximum" in sch:
        bits.append(f"<= {sch['maximum']}")
    if kind == "array":
        inner = _rule(sch.get("items", {}), plural=True)
        extra = [w for k, w in (("minItems", "non-empty"), ("uniqueItems", "no repeats")) if sch.get(k)]
        return f"a list of {inner}" + (f" ({', '.join(extra)})" if extra else "")
    noun = f"{kind}s" if plural else f"{'an' if kind == 'integer' else 'a'} {kind}"
    return noun + (f" {' and '.join(bits)}" if bits else "")


MOVED = {"options.mnemonics2020.gpu_memory_gb": "gpu_memory_gb (top level)"}  # old key -> new


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of `config` with defaults filled in, or raise ConfigError.
    Strings where the schema wants numbers or booleans are converted first (`coerce`)."""
    config = coerce(copy.deepcopy(config), schema()) if config else {}
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors:
            where = [str(p) for p in err.path]
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                for extra in sorted(set(err.instance) - set(allowed)):
                    key = ".".join([*where, extra])
                    if key in MOVED:
                        lines.append(f"  {key}: replaced by the key {MOVED[key]}")
                        continue
                    lines.append(f"  {'.'.join([*where, extra])}: unknown key; valid here: "
                                 f"{', '.join(allowed)}")
                continue
            message = err.message
            if err.validator in ("oneOf", "anyOf"):  # say the rule, not only "not valid"
                message = f"{err.instance!r} is not {_rule(err.schema)}"
            lines.append(f"  {'.'.join(where) or '(top level)'}: {message}")
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
