"""Mnemonics — Liu, Su, Liu, Schiele, Sun, "Mnemonics Training: Multi-Class Incremental
Learning without Forgetting", CVPR 2020."""

from functools import partial

from clrepro.papers.base import Artifact, Paper, UserSlot, claim_in, render_in
from clrepro.papers.mnemonics2020 import protocol, runs

_claim = partial(claim_in, __name__)
_render = partial(render_in, __name__)

CLAIMS = {c.id: c for c in [
    _claim("C1", "LUCIR w/ ours has the highest average incremental accuracy in all 9 settings."),
    _claim("C2", "LUCIR w/ ours has the lowest forgetting rate in all 9 settings."),
    _claim("C3", "Adding mnemonics raises Ā and lowers F for each of LwF, iCaRL, BiC and LUCIR "
                 "in every setting."),
    _claim("C4", "On CIFAR-100 the gain of LUCIR w/ ours over LUCIR grows with N (+1.78, +3.11, "
                 "+6.16)."),
    _claim("C5", "On 25-phase ImageNet, LUCIR w/ ours reaches Ā = 63.08 % and F = 14.40 %, about "
                 "20 points above iCaRL and 6.5 above LUCIR."),
    _claim("C6", "With mnemonics, LUCIR's forgetting drops to about a third on 25-phase CIFAR-100 "
                 "and about a half on 25-phase ImageNet."),
    _claim("C7", "LUCIR, BiC, iCaRL and LwF end lower for N = 25 than for N = 5; LUCIR w/ ours on "
                 "CIFAR-100 ends higher at N = 25 than at N = 5."),
    _claim("C8", "Mnemonics exemplars give the highest Ā and the lowest F in all 6 ablation "
                 "settings."),
    _claim("C9", "Adjusting old exemplars improves Ā by about 1 point on average on both "
                 "datasets."),
    _claim("C10", "Random exemplars forget less than herding exemplars in most ablation cells."),
    _claim("C11", "Mnemonics exemplars separate classes more clearly and lie on class boundaries; "
                  "herding exemplars sit near class centres."),
]}

ARTIFACTS = [
    Artifact("mnemonics.table1", "Average incremental accuracy and forgetting (Table 1)", "table",
             "Ā and F (%) of LwF, iCaRL, BiC and LUCIR with and without mnemonics training.",
             runs.table1, _render("render_table1"),
             [CLAIMS[c] for c in ("C1", "C2", "C3", "C4", "C5", "C6")]),
    Artifact("mnemonics.table2", "Ablation of exemplar type and adjustment (Table 2)", "table",
             "LUCIR with weight transfer and random, herding or mnemonics exemplars, with and "
             "without adjusting the old ones.", runs.table2, _render("render_table2"),
             [CLAIMS[c] for c in ("C8", "C9", "C10")]),
    Artifact("mnemonics.fig4", "Phase-wise accuracy (Figure 4)", "figure",
             "Accuracy on all classes seen so far after each phase, 95 % CI ribbons, and the "
             "joint-training upper bound.", runs.fig4, _render("render_fig4"), [CLAIMS["C7"]]),
    Artifact("mnemonics.fig1", "Exemplars in feature space, two phases (Figure 1)", "figure",
             "t-SNE of random, herding and mnemonics exemplars among their classes' images.",
             runs.exemplar_figures, _render("render_fig1"), [CLAIMS["C11"]]),
    Artifact("mnemonics.fig5", "Herding vs mnemonics exemplars, phases 0, 2, 4 (Figure 5)",
             "figure", "t-SNE of LUCIR's herding and LUCIR w/ ours' mnemonics exemplars.",
             runs.exemplar_figures, _render("render_fig5"), []),
]

# Where a method from outside clrepro (config `methods:`) runs: beside LUCIR (Table 1's row,
# herding exemplars), class-incremental phases, compared on the average incremental accuracy
_BESIDE_LUCIR = UserSlot("lucir", "class_incremental", trainer="phases", metric="avg_inc_acc")
_USER = {"mnemonics.table1": _BESIDE_LUCIR, "mnemonics.fig4": _BESIDE_LUCIR,
         "mnemonics.table2": "an ablation of exemplar kinds inside LUCIR",
         "mnemonics.fig1": "pictures of mnemonics exemplars",
         "mnemonics.fig5": "pictures of mnemonics exemplars"}
for _artifact in ARTIFACTS:
    _artifact.user = _USER[_artifact.id]

PAPER = Paper.from_protocol("mnemonics2020", "Mnemonics Training: Multi-Class Incremental "
                            "Learning without Forgetting",
                            "Y. Liu, Y. Su, A.-A. Liu, B. Schiele, Q. Sun. CVPR 2020.", protocol,
                            ARTIFACTS)
