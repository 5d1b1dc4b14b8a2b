"""Issue 24: a user's own method under the papers' protocols, from a config line."""

from __future__ import annotations

import yaml

from clrepro import config as cfg
from clrepro.papers import registry


def test_each_paper_owns_its_options_schema_and_the_central_schema_composes_them():
    central = yaml.safe_load(cfg.SCHEMA_PATH.read_text())
    for key, paper in registry().items():
        own = paper.options_schema()
        assert set(own) == set(paper.option_defaults)
        assert not any("default" in sub for sub in own.values())  # defaults: the protocol's
        composed = cfg.schema()["properties"]
        assert composed["options"]["properties"][key]["properties"] == own
        assert key in composed["papers"]["items"]["enum"] and key in composed["seeds"]["properties"]
    # no per-paper block in the central schema
    assert "properties" not in central["properties"]["options"]
    assert "properties" not in central["properties"]["seeds"]
    assert "enum" not in central["properties"]["papers"]["items"]
    # a typo in a paper's option is still named with the valid keys
    try:
        cfg.validate({"options": {"gem2017": {"gem.margn": 0.1}}})
    except cfg.ConfigError as exc:
        assert "options.gem2017.gem.margn: unknown key" in str(exc) and "gem.margin" in str(exc)
    else:
        raise AssertionError("typo accepted")
