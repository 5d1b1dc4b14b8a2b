"""Batch-level Distillation (Fini et al. 2020, Algorithms 1-2) and its two ablations.

Per incoming batch B of task t, with views A_1..A_V regenerated from their seeds:

  warm-up (Alg. 1):  bank Y^o_k = softmax(phi_o(A_k(B); theta) / tau) for every old head o;
                     G_w = 1/V sum_k grad H(phi_t(A_k(B)), y);  theta' = theta - alpha_w G_w
  joint (Alg. 2, `bld.joint_steps` times, each at the current parameters):
                     G_j = 1/V sum_k grad sum_o H(softmax(phi_o(A_k(B)) / tau), Y^o_k)   (Eq. 2)
                     G_j^(l) <- lambda ||G_w^(l)|| / ||G_j^(l)|| G_j^(l)   for every layer l
                     G_j <- G_j + 1/V sum_k grad H(phi_t(A_k(B)), y);  theta <- theta - alpha_j G_j

The bank is the only memory kept while the batch is processed (spec §4.8) and is released
after it: |B| x V x (old-head outputs) float32 values. Of G_w only its per-layer norms are kept;
the joint step holds G_j next to the cross-entropy gradient until it is balanced (one gradient
buffer more than Finetune, itemised in memory_bytes()["intra_parts"]; the paper does not count
gradient buffers). A layer whose warm-up or distillation gradient
norm is 0 gets no distillation gradient (0/0 := 0). On the first task there is no old head,
so only the cross-entropy steps remain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clrepro.methods.base import register
from clrepro.methods.views import ViewMethod

GRANULARITIES = ("tensor", "module", "global")


# A balancing group: (index into model.parameters(), rows of that tensor or None = all of it)
Group = list[tuple[int, "torch.Tensor | None"]]


def output_layer(model: torch.nn.Module, n_outputs: int) -> torch.nn.Linear | None:
    """The linear layer whose outputs are the logits (the last one with n_outputs outputs):
    every task's head is a slice of its rows."""
    found = None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == n_outputs:
            found = module
    return found


def layer_groups(model: torch.nn.Module, granularity: str,
                 heads: list[torch.Tensor] | None = None) -> list[Group]:
    """The parameters that share one norm: each tensor, each module's parameters together, or
    all of them (`bld.norm_granularity`, D8). With `heads` (each task's classes), the output
    layer is split by task: task t's rows of its weight and bias form their own layer(s)
    (spec §4.4, amended), so an old head -- warm-up norm 0 -- gets no distillation."""
    named = list(model.named_parameters())
    if granularity not in GRANULARITIES:
        raise ValueError(f"bld.norm_granularity must be one of {GRANULARITIES}")
    if granularity == "global":
        return [[(i, None) for i in range(len(named))]]
    index = {id(p): i for i, (_, p) in enumerate(named)}
    layer = output_layer(model, int(sum(len(h) for h in heads))) if heads else None
    split = [index[id(p)] for p in layer.parameters()] if layer is not None else []
    groups: dict[str, Group] = {}
    for i, (n, _) in enumerate(named):
        if i in split:
            continue
        key = n if granularity == "tensor" else n.rpartition(".")[0]
        groups.setdefault(key, []).append((i, None))
    out = list(groups.values())
    for rows in heads if split else []:
        if granularity == "tensor":
            out += [[(i, rows)] for i in split]
        else:
            out.append([(i, rows) for i in split])
    return out


def group_norms(grads: list[torch.Tensor], groups: list[Group]) -> list[torch.Tensor]:
    return [torch.sqrt(sum((grads[i] if rows is None else grads[i][rows]).pow(2).sum()
                           for i, rows in g)) for g in groups]


def balance(g_dist: list[torch.Tensor], warm_norms: list[torch.Tensor], groups: list[Group],
            lam: float) -> list[torch.Tensor]:
    """G_j^(l) <- lam ||G_w^(l)|| / ||G_j^(l)|| G_j^(l) per group (Alg. 2); 0 where either
    norm is 0. Scales g_dist in place and returns it."""
    row_scales: dict[int, torch.Tensor] = {}
    for group, warm, dist in zip(groups, warm_norms, group_norms(g_dist, groups)):
        scale = torch.where((warm > 0) & (dist > 0), lam * warm / dist.clamp(min=1e-30),
                            torch.zeros_like(dist))
        for i, rows in group:
            if rows is None:
                g_dist[i].mul_(scale)
            else:  # rows of the output layer: one scale per row, applied once below
                row_scales.setdefault(i, torch.zeros(len(g_dist[i]), device=scale.device,
                                                     dtype=scale.dtype))[rows] = scale
    for i, scale in row_scales.items():
        g_dist[i].mul_(scale.view(-1, *[1] * (g_dist[i].dim() - 1)))
    return g_dist


@register
class BLD(ViewMethod):
    """BLD (Algorithms 1-2): warm-up, probability bank, joint steps with per-layer gradient
    balancing. Ablations override `joint`: No-balancing replaces the ratio by 1, Alternated
    alternates distillation-only and cross-entropy-only steps."""

    name = "bld"
    hyperparameters = {
        "bld.lambda": "gradient-balancing factor lambda",
        "bld.tau": "softmax temperature of the old heads' predictions",
        "bld.lr_warmup": "warm-up learning rate alpha_w",
        "bld.joint_steps": "joint-training iterations per batch",
        "bld.norm_granularity": "tensor | module | global (D8)",
    }

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.groups = layer_groups(self.model, hp["bld.norm_granularity"], self.heads)

    def observe(self, x, y, tasks):
        views = self.views(self.step)
        bank: list[list[torch.Tensor]] = []  # per view: the old heads' predictions

        def warm_up_loss(out, k):
            if self.old_heads:
                bank.append([F.softmax(out[:, h].detach() / self.hp["bld.tau"], dim=1)
                             for h in self.old_heads])
            return self.new_task_loss(out, y)

        (g_warm,) = self.view_gradients(x, [warm_up_loss], views)
        self.hold_during_batch(bank=bank)
        warm_norms = group_norms(g_warm, self.groups)  # all that is kept of G_w
        self.descend(g_warm, self.hp["bld.lr_warmup"])
        del g_warm  # the one gradient buffer Finetune holds too
        for _ in range(self.hp["bld.joint_steps"]):
            self.joint(x, y, views, bank, warm_norms)

    def distillation_loss(self, out: torch.Tensor, predictions: list[torch.Tensor]) -> torch.Tensor:
        """sum_o H(softmax(phi_o(v') / tau), Y^o) = -sum_o sum_b Y^o_b log softmax(...) (Eq. 2)."""
        tau = self.hp["bld.tau"]
        return sum(self.reduce(-(target * F.log_softmax(out[:, h] / tau, dim=1)).sum(1))
                   for h, target in zip(self.old_heads, predictions))

    def joint(self, x, y, views, bank, warm_norms) -> None:
        if not bank:  # first task: cross-entropy only
            (g_ce,) = self.view_gradients(x, [lambda out, k: self.new_task_loss(out, y)], views)
            self.descend(g_ce, self.hp["lr"])
            return
        g_dist, g_ce = self.view_gradients(
            x, [lambda out, k: self.distillation_loss(out, bank[k]),
                lambda out, k: self.new_task_loss(out, y)], views)
        # G_j must be balanced before the cross-entropy gradient joins it: a second gradient
        # buffer beyond Finetune's (both come from the same forward passes)
        self.hold_during_batch(bank=bank, distillation_gradient=g_dist)
        for c, d in zip(g_ce, self.weigh(g_dist, warm_norms)):
            c.add_(d)
        self.descend(g_ce, self.hp["lr"])

    def weigh(self, g_dist, warm_norms):
        return balance(g_dist, warm_norms, self.groups, self.hp["bld.lambda"])


@register
class BLDNoBalancing(BLD):
    """No-balancing (BLD Table 5): the full model with ||G_w|| / ||G_j|| replaced by 1,
    i.e. G_j <- lambda G_j."""

    name = "bld_no_balancing"

    def weigh(self, g_dist, warm_norms):
        return [g.mul_(self.hp["bld.lambda"]) for g in g_dist]


@register
class BLDAlternated(BLD):
    """Alternated (BLD Table 5): no joint update. After the warm-up, each of the
    `bld.joint_steps` rounds takes a distillation-only step (balanced per layer as in the
    full model) and then a cross-entropy-only step, each at alpha_j (suite default)."""

    name = "bld_alternated"

    def joint(self, x, y, views, bank, warm_norms) -> None:
        if bank:
            (g_dist,) = self.view_gradients(x, [lambda out, k: self.distillation_loss(out, bank[k])],
                                            views)
            self.descend(self.weigh(g_dist, warm_norms), self.hp["lr"])
        (g_ce,) = self.view_gradients(x, [lambda out, k: self.new_task_loss(out, y)], views)
        self.descend(g_ce, self.hp["lr"])
