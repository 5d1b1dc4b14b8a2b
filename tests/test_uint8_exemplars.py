"""Stored images of the phase trainer's methods (issues 21/22): herding and random exemplars
and BiC's held-out images are the uint8 stream's own images, kept as uint8 (4x smaller) and
read back as the very float32 input the stream gives; mnemonics exemplars (optimised) stay
float. Checkpoints, the memory column and the memory pre-flight count the real storage."""

import io

import pytest
import torch

from clrepro.memory import exemplars as ex
from clrepro.data.transforms import as_float
from clrepro.methods import METHODS
from clrepro.phases import task_stream
from clrepro.loop import make_context

from test_mnemonics import HP, bench

CPU = torch.device("cpu")
PLAIN = {**HP, "mnemonics.adjust_old": False, "weight_transfer": False, "finetune.epochs": 0}
BIC = {"kd.tau": 2.0, "bic.val_fraction": 0.5, "bic.epochs": 1, "bic.lr": 0.01}


def phase0(name: str, hp: dict):
    """A method after phase 0's begin and end work (no training: the exemplar work only)."""
    b = bench()
    method = METHODS[name](make_context(b, CPU, 0, 1), hp)
    stream = task_stream(b.tasks[0], CPU, 0)
    method.begin_task(0, stream)
    method.end_task(0, stream)
    return method, stream


@pytest.mark.parametrize("kind", ["random", "herding"])
def test_unoptimised_exemplars_are_uint8_and_read_as_the_streams_input_bit_for_bit(kind):
    method, stream = phase0("icarl_cil", {**PLAIN, "exemplars.kind": kind})
    assert stream.x.dtype == torch.uint8 and sorted(method.exemplars) == [0, 1, 2, 3]
    for c, stored in method.exemplars.items():
        assert stored.dtype == torch.uint8 and len(stored) == 4
        members = stream.class_images(c)  # the float32 input the stream gives
        if kind == "herding":  # the same ranking, recomputed here
            order = ex.herding_ranking(method.features(members))[:4]
            assert torch.equal(as_float(stored), members[order])
        else:  # each exemplar is one of the class's images, bit for bit
            assert all(any(torch.equal(e, m) for m in members) for e in as_float(stored))


def test_optimised_mnemonics_exemplars_stay_float():
    method, stream = phase0("icarl_cil", {**PLAIN, "mnemonics.outer_epochs": 1, "mnemonics.lr": 1.0})
    for c, stored in method.exemplars.items():
        assert stored.dtype == torch.float32
        # they moved off the 1/255 grid, which uint8 could not keep
        assert not torch.equal(as_float(stored.mul(255).round().to(torch.uint8)), stored)


def test_bics_held_out_images_are_uint8_and_read_as_the_streams_input():
    method, stream = phase0("bic", {**PLAIN, **BIC, "exemplars.kind": "herding"})
    for c, held in method.validation.items():
        assert held.dtype == torch.uint8 and len(held) == 2
        members = stream.class_images(c)
        assert all(any(torch.equal(v, m) for m in members) for v in as_float(held))


def test_memory_bytes_count_the_uint8_storage():
    method, _ = phase0("bic", {**PLAIN, **BIC, "exemplars.kind": "random"})
    n_images = sum(len(e) for e in method.exemplars.values()) + sum(len(v) for v in method.validation.values())
    assert n_images == 4 * (2 + 2)  # 4 classes: 2 exemplars + 2 held out of a budget of 4
    assert method.memory_bytes()["data_storage"] == n_images * 28 * 28  # one byte a pixel


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_checkpoint_keeps_uint8_and_an_old_float_checkpoint_loads_as_uint8():
    method, _ = phase0("bic", {**PLAIN, **BIC, "exemplars.kind": "herding"})
    images = {c: as_float(e) for c, e in method.exemplars.items()}
    held = {c: as_float(v) for c, v in method.validation.items()}
    state = roundtrip(method.state_dict())
    # a checkpoint written before uint8 storage: the same images as float32 network input
    old = roundtrip({**state, "extra": {**state["extra"], "exemplars": images, "validation": held}})
    for saved in (state, old):
        fresh = METHODS["bic"](make_context(bench(), CPU, 0, 1), {**PLAIN, **BIC, "exemplars.kind": "herding"})
        fresh.load_state_dict(saved)
        for stored, expected in ((fresh.exemplars, images), (fresh.validation, held)):
            assert all(stored[c].dtype == torch.uint8 for c in stored)
            assert all(torch.equal(as_float(stored[c]), expected[c]) for c in expected)
        assert fresh.memory_bytes()["data_storage"] == method.memory_bytes()["data_storage"]


def test_the_preflight_sizes_stored_herding_exemplars_as_uint8():
    """End of task dominates at this shape: each extra stored exemplar of the 100 classes
    adds one byte a pixel to the estimate (float32 exemplars would add four)."""
    from clrepro.preflight import estimate

    hp = {**PLAIN, "exemplars.kind": "herding", "model": {"name": "resnet32_lucir", "blocks_per_stage": 1}}
    estimates = [estimate(METHODS["icarl_cil"], {**hp, "exemplars.per_class": m}, (3, 32, 32), 100, 2,
                          sizes=[50, 50]) for m in (1000, 1500)]
    assert all("end of task" in e.note for e in estimates)
    assert estimates[1].peak_bytes - estimates[0].peak_bytes == 100 * 500 * 3 * 32 * 32
