"""iCaRL (Rebuffi et al. 2017) as adapted by GEM's official code (GEM spec §4.4, D8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clrepro.memory.exemplars import ExemplarSet, herding
from clrepro.methods.base import Method, register


@register
class ICaRL(Method):
    """iCaRL, `icarl.variant` = gem_code (the only concrete source for GEM's numbers):

    - loss = CE over the current task's logits + for each previous task a KL distillation
      KL(softmax(stored logits) || softmax(current logits)) over that task's logits, on a
      mini-batch of one random exemplar per class, times `icarl.strength` (the official
      KLDivLoss 'mean' x classes-per-task equals the 'batchmean' used here);
    - at each task's end the exemplar set of each new class is chosen by herding on the
      task's logits, m = memory / #classes seen per class; old sets are cut to their first
      m only with `icarl.trim_old` (iCaRL's budget rule; off by default because the official
      code this variant follows never trims, so the stored total can exceed `memory`), and
      the stored logits of all exemplars are recomputed; counters.exemplars_stored records
      the total kept;
    - prediction: nearest mean of exemplars among the task's classes, with the network's
      full output as the feature; a task without exemplars yet predicts its first class.

    hp: lr, memory (total exemplars), icarl.strength, icarl.trim_old.
    """

    name = "icarl"
    needs_memory = True
    optional_hyperparameters = {
        "icarl.variant": "gem_code (the only variant implemented)",
    }
    hyperparameters = {
        "icarl.strength": "distillation strength",
        "icarl.trim_old": "cut old exemplar sets to the budget (not in the official code)",
    }
    state_attrs = ("exemplars", "targets", "seen_x", "seen_y")
    stored_data_attrs = ("exemplars", "seen_x")  # training images kept (data storage)

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        if hp.get("icarl.variant", "gem_code") != "gem_code":
            raise ValueError("icarl.variant: only 'gem_code' is implemented")
        if ctx.class_mask is None:
            raise ValueError("icarl (gem_code) needs a task-incremental benchmark")
        self.task_classes = [torch.nonzero(m).flatten().tolist() for m in ctx.class_mask]
        self.exemplars = ExemplarSet()  # class -> images chosen by herding
        self.targets: dict[int, torch.Tensor] = {}  # stored network outputs of the exemplars
        self.seen_x: list[torch.Tensor] = []
        self.seen_y: list[torch.Tensor] = []
        self.means: dict[int, torch.Tensor] = {}

    def begin_task(self, t, data=None):
        super().begin_task(t, data)
        self.seen_x, self.seen_y = [], []

    def observe(self, x, y, tasks):
        self.seen_x.append(x.detach().clone())
        self.seen_y.append(y.clone())
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x, y, tasks)
        for tt in range(self.task):
            loss = loss + self.hp["icarl.strength"] * self._distillation(tt)
        loss.backward()
        self.opt.step()

    def _distillation(self, tt: int) -> torch.Tensor:
        classes = self.task_classes[tt]
        picks = [int(torch.randint(len(self.exemplars[c]), (1,), generator=self.ctx.generator))
                 for c in classes]
        inp = torch.stack([self.exemplars[c][i] for c, i in zip(classes, picks)])
        target = torch.stack([self.targets[c][i] for c, i in zip(classes, picks)])[:, classes]
        log_p = F.log_softmax(self.model(inp)[:, classes], dim=1)
        return F.kl_div(log_p, F.softmax(target, dim=1), reduction="batchmean")

    @torch.no_grad()
    def end_task(self, t, data=None):
        x, y = torch.cat(self.seen_x), torch.cat(self.seen_y)
        self.seen_x, self.seen_y = [], []
        classes = self.task_classes[t]
        per_class = self.hp["memory"] // (len(self.exemplars) + len(classes))
        if self.hp["icarl.trim_old"]:
            self.exemplars.trim(per_class)
        for c in classes:
            cx = x[y == c]
            if len(cx) == 0 or per_class == 0:
                continue
            feats = self.model(cx)[:, classes]
            self.exemplars[c] = cx[herding(feats, per_class)].clone()
        self.targets = {c: self.model(ex) for c, ex in self.exemplars.items()}
        self.counters["exemplars_stored"] = sum(len(ex) for ex in self.exemplars.values())

    @torch.no_grad()
    def prepare_eval(self):
        self.means = {c: self.model(ex).mean(0) for c, ex in self.exemplars.items()}

    @torch.no_grad()
    def predict(self, x, tasks):
        t = int(tasks[0])
        classes = self.task_classes[t]
        if classes[0] not in self.means:
            return torch.full((len(x),), classes[0], dtype=torch.long, device=x.device)
        means = torch.stack([self.means.get(c, torch.full_like(self.means[classes[0]],
                                                               float("inf")))
                             for c in classes])
        nearest = torch.cdist(self.model(x), means).argmin(1)
        return torch.tensor(classes, device=x.device)[nearest]
