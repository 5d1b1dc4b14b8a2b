"""BLD — Fini, Lathuilière, Sangineto, Nabi, Ricci, "Online Continual Learning under Extreme
Memory Constraints", ECCV 2020."""

from functools import partial

from clrepro.papers.base import Artifact, Paper, UserSlot, claim_in, render_in
from clrepro.papers.bld2020 import protocol, runs

_claim = partial(claim_in, __name__)
_render = partial(render_in, __name__)

CLAIMS = {c.id: c for c in [
    _claim("C1", "Finetune forgets catastrophically: with 2 tasks its T1 exceeds T0 by 18.8 points "
                 "on MNIST (99.6 vs 80.8) and 25.2 on CIFAR-10 (85.6 vs 60.4)."),
    _claim("C2", "2 tasks, among the MC-OCL methods (Finetune, L2, BLD): BLD has the best average "
                 "on CIFAR-10 and SVHN, L2 on MNIST."),
    _claim("C3", "2 tasks: BLD beats Finetune on T0 on all three datasets, and on T1 on CIFAR-10 "
                 "and SVHN (forward transfer)."),
    _claim("C4", "BLD closes about half of the Finetune -> offline-LwF gap on 2-task MNIST and "
                 "SVHN (45 % and 63 %)."),
    _claim("C5", "5 tasks: BLD has the best average among Finetune, L2 and BLD on all three "
                 "datasets (+11.9, +7.7, +7.5 over L2)."),
    _claim("C6", "5-task CIFAR-10: BLD equals single-pass LwF (86.2 vs 86.2), which violates the "
                 "MC-OCL constraints."),
    _claim("C7", "Offline LwF outperforms BLD on every dataset and setting (upper bound)."),
    _claim("C8", "BLD's intra-batch overhead is 32 kB; LwF's 384 / 320 / 469 kB; L2's 44.8 MB; BLD "
                 "has no inter-batch and no data-storage overhead."),
    _claim("C9", "Ablation, CIFAR-10 5 tasks: Full > No-balancing > Alternated > L2 > Finetune."),
    _claim("C10", "Ablation, CIFAR-10 2 tasks: Full > L2 > No-balancing > Finetune > Alternated; "
                  "No-balancing and Full beat Finetune on T1."),
]}

ARTIFACTS = [
    Artifact("bld.table1", "Final test accuracy with 2 tasks (Table 1)", "table",
             "Per-task accuracy (%) of each task's head after the last task, and their mean.",
             runs.table1_and_c7, _render("render_table1"),
             [CLAIMS[c] for c in ("C1", "C2", "C3", "C4", "C7")]),
    Artifact("bld.table2", "Final test accuracy and memory overhead, MNIST 5 tasks (Table 2)",
             "table", "Per-task accuracy (%) and the memory each method keeps.", runs.table2_and_c5,
             _render("render_table2"), [CLAIMS["C5"], CLAIMS["C8"]]),
    Artifact("bld.table3", "Final test accuracy and memory overhead, CIFAR-10 5 tasks (Table 3)",
             "table", "Per-task accuracy (%) and the memory each method keeps.", runs.table3,
             _render("render_table3"), [CLAIMS["C6"]]),
    Artifact("bld.table4", "Final test accuracy and memory overhead, SVHN 5 tasks (Table 4)",
             "table", "Per-task accuracy (%) and the memory each method keeps; the memory columns "
             "need no run.", runs.table4, _render("render_table4"), []),
    Artifact("bld.table5", "Ablation on CIFAR-10, 2 and 5 tasks (Table 5)", "table",
             "Alternated and No-balancing against Finetune, L2 and the full model.", runs.table5,
             _render("render_table5"), [CLAIMS["C9"], CLAIMS["C10"]]),
    Artifact("bld.tuning", "Supplementary: L2's mu and the stand-ins' learning rate, selected "
             "on validation data", "table", "The grids on a validation split of the training "
             "data (never the test set): L2's mu per dataset and task count (spec §4.5) and, "
             "for the quick stand-ins, the raised SGD learning rate.", runs.tuning,
             _render("render_tuning"), [], tuning=True),
]

# Where a method from outside clrepro (config `methods:`) runs: beside BLD, task-aware heads,
# no replay memory (MC-OCL); a grid of its values is selected on the validation twin
_BESIDE_BLD = UserSlot("bld", "task_aware", tuning=runs.user_tuning)
_USER = {"bld.table1": _BESIDE_BLD, "bld.table2": _BESIDE_BLD, "bld.table3": _BESIDE_BLD,
         "bld.table4": _BESIDE_BLD, "bld.table5": "an ablation of BLD's balancing",
         "bld.tuning": "BLD's own grids (L2's mu, the stand-ins' learning rate)"}
for _artifact in ARTIFACTS:
    _artifact.user = _USER[_artifact.id]

PAPER = Paper.from_protocol("bld2020", "Online Continual Learning under Extreme Memory Constraints",
                            "E. Fini, S. Lathuilière, E. Sangineto, M. Nabi, E. Ricci. ECCV 2020.",
                            protocol, ARTIFACTS)
