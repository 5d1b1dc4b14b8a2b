"""Hyperparameter declarations: read without importing torch, checked before any job."""

import subprocess
import sys

import pytest

from clrepro import config as cfg
from clrepro import plan
from clrepro.methods import METHODS, catalog
from clrepro.papers import get_paper
from clrepro import phases, train
from clrepro.papers import strategies

TRAINERS = {"online": (train, strategies), "phases": (phases,)}


def _meaning(value):
    return value[0] if isinstance(value, tuple) else value  # (meaning, default)


def declared_at_runtime(cls):
    required, optional = {}, {}
    for klass in reversed(cls.__mro__):
        required.update({k: _meaning(v) for k, v in klass.__dict__.get("hyperparameters", {}).items()})
        optional.update({k: _meaning(v) for k, v in
                         klass.__dict__.get("optional_hyperparameters", {}).items()})
    return required, optional


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_source_reading_agrees_with_the_classes(name):
    required, optional = declared_at_runtime(METHODS[name])
    modules = TRAINERS[METHODS[name].trainer]
    trainer_keys = {k: v for m in modules for k, v in getattr(m, "TRAINER_KEYS", {}).items()}
    trainer_optional = {k: v for m in modules for k, v in m.TRAINER_OPTIONAL.items()}
    required = {**trainer_keys, **required}
    optional = {k: v for k, v in {**trainer_optional, **optional}.items() if k not in required}
    assert catalog.method_keys(name) == (required, optional)


def test_a_typo_or_a_missing_key_names_the_method_and_the_key(monkeypatch):
    paper = get_paper("gem2017")
    original = paper.hyperparams

    def typo(spec, options):
        hp = original(spec, options)
        if spec.method == "gem":
            hp["gem.margni"] = hp.pop("gem.margin")
        return hp

    monkeypatch.setattr(paper, "hyperparams", typo)
    with pytest.raises(cfg.ConfigError) as err:
        plan.build({"papers": ["gem2017"]})
    message = str(err.value)
    assert "method 'gem'" in message and "missing gem.margin" in message
    assert "unknown gem.margni" in message


def test_planning_reads_the_declarations_without_torch():
    code = ("import sys; from clrepro.methods import catalog; catalog.method_keys('er_gmed'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_compatibility_read_from_source_agrees_with_the_classes(name):
    cls = METHODS[name]
    assert catalog.compatibility(name) == {
        "settings": tuple(cls.settings), "needs_memory": cls.needs_memory,
        "needs_task_ids": cls.needs_task_ids, "needs_pretrained": cls.needs_pretrained,
        "trainer": cls.trainer}


def test_every_method_module_is_found_without_a_list():
    import clrepro.methods as package

    found = set(package._modules())
    files = {p.stem for p in catalog.PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert found == files
    assert {c.name for c in catalog.classes().values() if c.name} == set(METHODS)


def test_a_misfit_is_named_with_its_reason():
    assert catalog.misfit("gem", "task_free", "online", True, False) == (
        "needs task ids; this artifact is task-free")
    assert "needs a memory" in catalog.misfit("er", "task_aware", "online", False, False)
    assert "phases trainer" in catalog.misfit("lucir", "class_incremental", "online", True, False)
    assert catalog.misfit("er", "task_free", "online", True, False) is None
