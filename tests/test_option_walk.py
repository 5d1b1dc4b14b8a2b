"""Every schema-valid option value plans, for every paper at every scale, or is refused by an
error naming the option (a value that does not fit a scale, e.g. 1 angle for 2 tasks) --
never a crash inside the plan (issue 18 item 8: `options: {bld2020: {split.fixed: true}}` at
quick scale crashed planning)."""

from typing import Any

import pytest

from clrepro import config, plan

SCHEMA = config.schema()
OPTIONS = SCHEMA["properties"]["options"]["properties"]
SCALES = SCHEMA["properties"]["scale"]["enum"]


def sample_values(sch: dict[str, Any]) -> list[Any]:
    """Valid values covering each enum member, both booleans, each oneOf alternative and the
    bounds of numbers."""
    if "oneOf" in sch:
        return [v for alt in sch["oneOf"] for v in sample_values(alt)]
    if "enum" in sch:
        return list(sch["enum"])
    kind = sch.get("type")
    if isinstance(kind, list):  # e.g. ["number", "null"]
        return [v for k in kind for v in sample_values({**sch, "type": k})]
    if kind == "boolean":
        return [True, False]
    if kind == "null":
        return [None]
    if kind in ("integer", "number"):
        low = sch.get("minimum", sch.get("exclusiveMinimum", 0))
        low = low + (1 if "exclusiveMinimum" in sch else 0) if kind == "integer" else low
        value = low if "exclusiveMinimum" not in sch or kind == "integer" else low + 0.05
        high = sch.get("maximum")
        return [value, *([high] if high is not None else [value + 2])]
    if kind == "array":
        return [sample_values(sch["items"])[:1] * max(sch.get("minItems", 1), 1)]
    if kind == "object":
        return [{k: sample_values(v)[0]} for k, v in sch.get("properties", {}).items()]
    raise AssertionError(f"no sample for {sch}")


CASES = [(paper, key, value) for paper, sch in OPTIONS.items()
         for key, sub in sch["properties"].items() for value in sample_values(sub)]


def test_the_walk_covers_every_option():
    assert {(p, k) for p, k, _ in CASES} == {(p, k) for p, s in OPTIONS.items()
                                             for k in s["properties"]}


@pytest.mark.parametrize("paper,key,value", CASES, ids=[f"{p}:{k}={v}" for p, k, v in CASES])
def test_every_option_value_plans_at_every_scale(paper, key, value):
    for scale in SCALES:
        cfg = config.validate({"scale": scale, "papers": [paper], "options": {paper: {key: value}}})
        try:
            p = plan.build(cfg)
        except (config.ConfigError, ValueError) as exc:
            if f"options.{paper}.{key}" in str(exc):
                continue  # refused, naming the option
            raise AssertionError(f"scale {scale}, options {paper}.{key}={value!r}: {exc!r}") from exc
        assert p.runs
