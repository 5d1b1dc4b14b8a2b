"""BiC (Wu et al. 2019; Mnemonics spec §4.3 amended): a balanced validation part kept out of
all training, and a bias correction that undoes a bias toward the new classes."""

import pytest
import torch

from clrepro.methods import METHODS
from clrepro.phases import train_phases
from clrepro.loop import make_context

from test_mnemonics import HP, bench

CPU = torch.device("cpu")
BIC = {"kd.tau": 2.0, "bic.val_fraction": 0.5, "bic.epochs": 30, "bic.lr": 0.1,
       "bic.momentum": 0.9, "bic.beta_l2": 0.1, "exemplars.kind": "herding",
       "mnemonics.adjust_old": False, "weight_transfer": False, "finetune.epochs": 1,
       "augment.crop_pad": 0, "augment.flip": False}  # unaugmented: images compare exactly


def rows_of(x: torch.Tensor) -> set[bytes]:
    return {bytes(r.numpy().tobytes()) for r in (x.float() / (255 if x.dtype == torch.uint8 else 1))
            .reshape(len(x), -1)}


def test_the_validation_part_is_balanced_and_never_trained_on(monkeypatch):
    """2 of each class's 4-image budget (val_fraction 0.5) for old and new classes alike,
    none of them in a training batch, an exemplar set or the balanced fine-tuning."""
    cls = METHODS["bic"]
    trained: list[torch.Tensor] = []
    real_observe = cls.observe

    def observe(self, x, y, tasks):
        trained.append(x.detach().clone())
        return real_observe(self, x, y, tasks)

    monkeypatch.setattr(cls, "observe", observe)
    from clrepro.methods import cil

    def finetune(self, t):  # record what the balanced fine-tuning trains on
        trained.append(self.exemplars.stacked()[0].clone())

    monkeypatch.setattr(cil.ClassIncremental, "balanced_finetune", finetune)
    seen = {}
    real_end_phase = cls.end_phase

    def end_phase(self, t, data):
        seen[t] = ({c: v.clone() for c, v in self.validation.items()},
                   {c: len(v) for c, v in self.exemplars.items()})
        return real_end_phase(self, t, data)

    monkeypatch.setattr(cls, "end_phase", end_phase)
    out = train_phases(bench(), cls, {**HP, **BIC}, 0, 1, CPU)
    assert out["status"] == "ok"
    assert out["counters"]["bic_held_out_per_class"] == {str(c): 2 for c in range(8)}
    validation, exemplars = seen[2]
    assert {len(v) for v in validation.values()} == {2} and sorted(validation) == list(range(8))
    assert set(exemplars.values()) == {2}  # the rest of the 4-image budget
    held = set().union(*(rows_of(v) for v in validation.values()))
    assert held and not held & set().union(*(rows_of(x) for x in trained))


def test_the_bias_correction_undoes_a_bias_toward_the_new_classes():
    """Logits of 4 old and 2 new classes where the new ones are inflated by +3: the fitted
    alpha * z + beta lowers them and the corrected argmax is right more often."""
    method = METHODS["bic"](make_context(bench(), CPU, 0, 1), {**HP, **BIC})
    method.restore_structure(1, "end")  # phase 1: 4 old + 2 new classes, bias on the new
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(6).repeat(20)
    logits = torch.randn(len(y), 6, generator=gen)
    logits[torch.arange(len(y)), y] += 2.0  # the right class leads by 2 ...
    logits[:, 4:] += 3.0  # ... but the new classes are inflated by 3
    before = (logits.argmax(1) == y).float().mean()
    method.hp = {**method.hp, "bic.epochs": 200, "batch_size": 32}
    method.fit_bias(logits, y, 1)
    corrected = method.bias(logits)
    after = (corrected.argmax(1) == y).float().mean()
    assert (corrected[:, 4:] < logits[:, 4:]).all()
    assert method.bias.beta.item() < 0
    assert after > before + 0.3
    assert torch.equal(corrected[:, :4], logits[:, :4])  # old classes' logits kept (Eq. 5)


@pytest.mark.parametrize("layers", ["newest", "all"])
def test_every_phase_keeps_its_layer_only_with_bias_layers_all(layers):
    out_hp = {**HP, **BIC, "finetune.epochs": 0, "bic.bias_layers": layers, "bic.epochs": 5}
    method = METHODS["bic"](make_context(bench(), CPU, 0, 1), out_hp)
    b = bench()
    from clrepro.phases import task_stream

    for t in range(3):
        stream = task_stream(b.tasks[t], CPU, 0)
        method.begin_task(t, stream)
        method.end_task(t, stream)
    x = b.tasks[0].test_x[:5].float() / 255
    raw = method.model(x)
    expected = raw.clone()
    if layers == "all":
        assert method.previous.shape == (1, 4) and method.previous[0, :2].tolist() == [4, 6]
        a, beta = method.previous[0, 2:].tolist()
        expected[:, 4:6] = a * raw[:, 4:6] + beta
    else:
        assert method.previous.shape == (0, 4)
    assert torch.allclose(method.bias(method.corrected_logits(x)), method.bias(expected))
