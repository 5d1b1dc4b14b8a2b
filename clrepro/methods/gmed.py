"""Gradient-based Memory EDiting (Jin, Du, Ren; GMED spec §4.4) and its ablations.

ER+GMED (Algorithm 1): before replaying, every drawn memory example x is moved one step of
gradient *ascent* on its estimated forgetting minus a loss regulariser (Eqs. 3-6),

    d(x)  = l(x; theta') - l(x; theta),   theta' = theta - tau * grad_theta l(x_D; theta)  (Eqs. 4-5)
    x'    = x + alpha * grad_x [ d(x) - beta * l(x; theta) ]                                (Eq. 6)

then the model takes the ER step on x' U x_D (Eq. 7) and x' replaces x in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clrepro.memory import uniform_slots
from clrepro.methods.base import register
from clrepro.methods.lookahead import forward_with, sgd_step_params, untouched_buffers
from clrepro.methods.replay import ER, MIR

REG_SIGNS = ("paper", "code")
SCHEDULES = ("per_iteration", "first_iteration")
REDUCTIONS = ("mean", "sum")


def gmed_direction(model, x, y, step_x, step_y, lr: float, beta: float, reg_sign: str = "paper",
                   reduction: str = "mean") -> torch.Tensor:
    """grad_x [d - beta * l_before] = grad l_after - (1 + beta) grad l_before (paper sign).

    reg_sign "code" (spec D1): the official code adds +beta * grad l_before instead, i.e.
    ascends on l_after - (1 - beta) l_before. Losses are batch means (official code, D6);
    reduction "sum" scales by the batch size (the paper's batch-size-1 view). The look-ahead
    step uses the model's learning rate tau (Algorithm 1; Eq. 4 omits it, D13)."""
    if reg_sign not in REG_SIGNS or reduction not in REDUCTIONS:
        raise ValueError(f"gmed.reg_sign in {REG_SIGNS}, gmed.edit_reduction in {REDUCTIONS}")
    x = x.detach().requires_grad_(True)
    with untouched_buffers(model), torch.enable_grad():
        (g_before,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        params = sgd_step_params(model, F.cross_entropy(model(step_x), step_y), lr)
        (g_after,) = torch.autograd.grad(F.cross_entropy(forward_with(model, params, x), y), x)
    coef = 1.0 + beta if reg_sign == "paper" else 1.0 - beta
    direction = g_after - coef * g_before
    return direction * len(x) if reduction == "sum" else direction


class Editing:
    """Mixin for ER-style methods that edit memory examples in place before replay.

    hp: gmed.alpha, gmed.clip, gmed.edit_schedule (spec D15: per_iteration = one edit step
    in each of the replay.iterations updates, first_iteration = all edit steps before the
    first update), gmed.log_edits (keep unedited copies for GMED Figs. 5-6)."""

    hyperparameters = {
        "gmed.alpha": "editing stride alpha (Table 1)",
        "gmed.clip": "clip edited pixels to [0, 1] (D7)",
        "gmed.edit_schedule": "per_iteration | first_iteration (D15)",
    }

    def edit_indices(self, x, y) -> torch.Tensor:
        return uniform_slots(self.memory, self.hp["replay.batch_size"])

    def direction(self, mx, my, x, y) -> torch.Tensor:
        raise NotImplementedError

    def edit_memory(self, x, y, iteration) -> torch.Tensor | None:
        """Edit a batch of memory examples in place; return their slots (None: no edit)."""
        schedule = self.hp["gmed.edit_schedule"]
        if schedule not in SCHEDULES:
            raise ValueError(f"gmed.edit_schedule must be one of {SCHEDULES}")
        steps = 1 if schedule == "per_iteration" else (self.hp["replay.iterations"] if iteration == 0 else 0)
        if steps == 0 or len(self.memory) == 0:
            return None
        idx = self.edit_indices(x, y)
        mem = self.memory
        edited = mem.x[idx]
        for _ in range(steps):
            edited = edited + self.hp["gmed.alpha"] * self.direction(edited, mem.y[idx], x, y)
        if self.hp["gmed.clip"]:
            edited = edited.clamp(0.0, 1.0)
        mem.x[idx] = edited.detach()
        self.count("edits", len(idx))
        return idx

    def artifacts(self):
        mem = self.memory
        if mem.origin is None:
            return {}
        n = len(mem)
        return {"original": mem.origin[:n].cpu(), "edited": mem.x[:n].cpu(),
                "label": mem.y[:n].cpu(), "task": mem.t[:n].cpu()}


class _GMEDDirection:
    hyperparameters = {
        "gmed.beta": "regularisation strength beta (Table 1)",
        "gmed.reg_sign": "paper | code (D1)",
        "gmed.edit_reduction": "mean | sum (D6)",
    }

    def direction(self, mx, my, x, y):
        return gmed_direction(self.model, mx, my, x, y, self.hp["lr"], self.hp["gmed.beta"],
                              self.hp["gmed.reg_sign"], self.hp["gmed.edit_reduction"])


class _EditThenReplay(Editing, ER):
    """Edit the replay batch, then replay exactly the examples just edited."""

    pending = None

    def before_update(self, x, y, iteration):
        self.pending = self.edit_memory(x, y, iteration)

    def replay_indices(self, x, y):
        idx, self.pending = self.pending, None
        return idx if idx is not None else super().replay_indices(x, y)


@register
class ERGMED(_GMEDDirection, _EditThenReplay):
    """ER+GMED (Algorithm 1)."""

    name = "er_gmed"


@register
class MIRGMED(_GMEDDirection, Editing, MIR):
    """MIR+GMED (§4.4): replay the MIR-selected examples as they were, and edit a separate
    random memory batch (editing the most interfered examples would only make forgettable
    examples more forgettable)."""

    name = "mir_gmed"

    def observe(self, x, y, tasks):
        for iteration in range(self.hp["replay.iterations"]):
            idx = self.replay_indices(x, y)
            mem = self.memory
            mx, my, mt = mem.x[idx].clone(), mem.y[idx], mem.t[idx]  # before the edit
            self.edit_memory(x, y, iteration)
            self.opt.zero_grad(set_to_none=True)
            self.replay_loss(x, y, tasks, mx, my, mt).backward()
            self.opt.step()
        self.memory.add(x, y, tasks)


@register
class RandomEdit(_EditThenReplay):
    """Random Edit (GMED Table 3): x' = x + alpha_r * u with a random direction u instead of
    GMED's. hp: gmed.alpha = alpha_r, tuned on the alpha grid like GMED's alpha (§4.5);
    random_edit.variant:

    - paper (suite default): u is a standard-normal direction drawn at every edit and scaled
      to unit L2 norm per example (spec §4.5);
    - code (official ver_approx.py, USE_LOSS_1=-2 with PROJ_LOSS_REG=2): one direction per
      memory slot, uniform in [-1, 1] and drawn once for the run, scaled to unit norm, plus the
      regulariser term +beta * grad_x l(x; theta) (hp gmed.beta).
    """

    name = "er_random_edit"
    optional_hyperparameters = {
        "gmed.beta": "code variant: weight of +grad l_before",
    }
    hyperparameters = {
        "random_edit.variant": "paper | code (random direction per edit or per slot)",
    }
    state_attrs = ("memory", "slot_directions")

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp["random_edit.variant"] not in ("paper", "code"):
            raise ValueError("random_edit.variant must be paper or code")
        self.slot_directions = None
        if hp["random_edit.variant"] == "code":
            u = torch.rand((hp["memory"], *ctx.input_shape), generator=ctx.generator) * 2 - 1
            self.slot_directions = _unit(u).to(self.device)

    def direction(self, mx, my, x, y):
        if self.slot_directions is None:
            return _unit(torch.randn(mx.shape, generator=self.ctx.generator).to(mx.device))
        idx = self.pending_slots
        mx = mx.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(self.model(mx), my), mx)
        return self.slot_directions[idx] + self.hp["gmed.beta"] * grad

    def edit_indices(self, x, y):
        self.pending_slots = super().edit_indices(x, y)
        return self.pending_slots


def _unit(u: torch.Tensor) -> torch.Tensor:
    return u / u.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (u.dim() - 1))


@register
class HindsightEdit(_GMEDDirection, _EditThenReplay):
    """Hindsight Edit (GMED Table 3): GMED, but the look-ahead step trains on a random memory
    batch (drawn independently of the edited one) instead of the stream batch, estimating
    forgetting in hindsight as HAL does."""

    name = "er_hindsight_edit"

    def direction(self, mx, my, x, y):
        look = uniform_slots(self.memory, self.hp["replay.batch_size"])
        return super().direction(mx, my, self.memory.x[look], self.memory.y[look])
