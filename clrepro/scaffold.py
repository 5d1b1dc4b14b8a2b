"""`clrepro new-method NAME [--trainer online|phases]`: a starting file for a user's method
and a test for it, outside clrepro (README "Adding your own method")."""

from __future__ import annotations

import re
from pathlib import Path

ONLINE = '''"""{title}: <what it does, in one line>.

Write here the equation (or algorithm) this method implements and where it comes from,
e.g. "Eq. (3) of <paper>: L = CE(f(x), y) + w * R(f)". Every term of `observe` should be
traceable to it (README "Adding your own method").
"""

import torch.nn.functional as F

from clrepro.methods.base import Method


class {cls}(Method):
    """<the equation/algorithm, as in the module docstring>."""

    name = "{name}"
    # The keys it reads: "key": ("meaning", default). A paper's protocol gives the keys every
    # method reads (lr, model, batch size, ...); yours take these defaults unless the config
    # says otherwise (methods.{name}.hyperparameters, or a {{grid: [...]}} where a paper
    # selects values on a validation split).
    hyperparameters = {{"{name}.weight": ("weight of the extra term (Eq. ?)", 1.0)}}
    # What it fits: artifacts it does not fit are skipped, naming the reason.
    settings = ("task_aware", "class_incremental", "task_free")
    needs_memory = False  # True: runs with the reference baseline's memory size
    needs_task_ids = False  # True: not in task-free artifacts
    needs_pretrained = False  # True: only where the network starts pretrained
    state_attrs = ()  # attributes carried between batches (checkpointed; memory_bytes counts them)

    def begin_task(self, t, data=None):
        super().begin_task(t, data)  # data: the task's examples (timed as training)

    def observe(self, x, y, tasks):
        """One stream mini-batch: one step of the equation above."""
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.logits(x, tasks), y)  # + self.hp["{name}.weight"] * ...
        loss.backward()
        self.opt.step()
'''

PHASES = '''"""{title}: <what it does, in one line>.

Write here the equation (or algorithm) this method implements and where it comes from,
e.g. "Eq. (5) of <paper>: L = lambda L_c + (1 - lambda) L_d". It runs in the phase trainer
(clrepro/phases.py: epochs over each phase's data and the exemplars of the old classes).
"""

import torch.nn.functional as F

from clrepro.methods.cil import ClassIncremental


class {cls}(ClassIncremental):
    """<the equation/algorithm, as in the module docstring>."""

    name = "{name}"
    # The keys it reads: "key": ("meaning", default); the protocol gives the rest (exemplars,
    # epochs, lr schedule, model) as for the paper's reference baseline.
    hyperparameters = {{"{name}.weight": ("weight of the extra term (Eq. ?)", 1.0)}}
    needs_pretrained = False

    def classification_loss(self, x, y):
        """The loss of one mini-batch of the phase's data and exemplars (the equation above)."""
        return F.cross_entropy(self.model(x), y)  # + self.hp["{name}.weight"] * ...
'''

TEST = '''"""Tests of {module}: its declarations plan under the papers, and {check}."""

import pytest

from clrepro import plan

ENTRY = "{module}:{cls}"


def test_it_plans_beside_the_baselines():
    p = plan.build({{"scale": "smoke", "papers": ["{paper}"],
                    "methods": {{"{name}": {{"entry": ENTRY}}}}}})
    assert any(job.spec.method == "{name}" for job in p.runs.values())
{extra}

def test_it_does_what_its_equation_says():
    pytest.skip("write a hand-computed case of the equation in {module}'s docstring "
                "(a tiny batch, the loss or update computed by hand or in float64)")
'''

ONLINE_EXTRA = '''

def test_one_step_moves_the_network_and_stays_finite():
    import torch

    from clrepro.methods import catalog
    from clrepro.methods.base import Context
    from {module} import {cls}

    catalog.register_external("{name}", ENTRY)
    hp = {{**catalog.defaults("{name}"), "lr": 0.1,
          "model": {{"name": "mlp", "hidden": [16], "init": "xavier"}}}}
    ctx = Context(input_shape=(1, 4, 4), n_classes=4, n_tasks=2, class_mask=None,
                  device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    method = {cls}(ctx, hp)
    before = [p.detach().clone() for p in method.model.parameters()]
    method.begin_task(0)
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    method.observe(x, y, torch.zeros(8, dtype=torch.long))
    assert method.parameters_finite()
    assert any(not torch.equal(a, b) for a, b in zip(before, method.model.parameters()))
'''


def write(name: str, trainer: str, folder: str | Path = ".") -> list[Path]:
    """<folder>/<name>.py and <folder>/test_<name>.py; refuses to overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"method name '{name}': lower-case letters, digits and _ (it names "
                         f"the run folders)")
    if trainer not in ("online", "phases"):
        raise ValueError(f"--trainer {trainer}: online or phases")
    folder = Path(folder)
    cls = "".join(part.capitalize() for part in name.split("_")) or "Mine"
    files = [folder / f"{name}.py", folder / f"test_{name}.py"]
    taken = [str(f) for f in files if f.exists()]
    if taken:
        raise FileExistsError(f"{', '.join(taken)} exist(s); not overwritten")
    fields = dict(name=name, cls=cls, module=name, title=cls)
    source = (ONLINE if trainer == "online" else PHASES).format(**fields)
    test = TEST.format(**fields, paper="gmed2021" if trainer == "online" else "mnemonics2020",
                       check="one training step" if trainer == "online" else "its equation",
                       extra=ONLINE_EXTRA.format(**fields) if trainer == "online" else "")
    folder.mkdir(parents=True, exist_ok=True)
    files[0].write_text(source)
    files[1].write_text(test)
    return files
