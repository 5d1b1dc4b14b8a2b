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


def test_new_method_writes_a_file_and_a_test_that_pass_outside_clrepro(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    for name, trainer in (("my_online", "online"), ("my_phases", "phases")):
        out = subprocess.run([sys.executable, "-m", "clrepro", "new-method", name, "--trainer",
                              trainer, "--dir", str(tmp_path)], capture_output=True, text=True,
                             env=env, check=True)
        assert f"{name}:My" in out.stdout
        source = (tmp_path / f"{name}.py").read_text()
        assert "equation" in source and "hyperparameters" in source and "needs_memory" in source or trainer == "phases"
    again = subprocess.run([sys.executable, "-m", "clrepro", "new-method", "my_online", "--dir",
                            str(tmp_path)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "not overwritten" in again.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(tmp_path), str(tmp_path)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed, 2 skipped" in tests.stdout  # the equation checks are hers to write
