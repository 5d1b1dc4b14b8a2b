"""GMED — Jin, Du, Ren, "Gradient Based Memory Editing for Task-Free Continual Learning"."""

from functools import partial

from clrepro.papers.base import Artifact, Paper, UserSlot, claim_in, render_in
from clrepro.papers.gmed2021 import protocol, runs

_claim = partial(claim_in, __name__)
_render = partial(render_in, __name__)


CLAIMS = {c.id: c for c in [
    _claim("C1", "ER+GMED beats ER on Split MNIST (82.68 vs 80.96), p < 1e-3 (one-tailed paired "
                 "t-test over seeds)."),
    _claim("C2", "ER+GMED beats ER significantly on Rotated MNIST and Split CIFAR-10 (p < 0.05) "
                 "and on Split mini-ImageNet (p < 1e-3)."),
    _claim("C3", "ER+GMED does not significantly improve over ER on Permuted MNIST."),
    _claim("C4", "MIR+GMED beats MIR significantly on Split MNIST (p < 1e-3), Permuted MNIST "
                 "(p < 0.05), Rotated MNIST (p < 1e-3) and Split mini-ImageNet (p < 0.05), but "
                 "not on Split CIFAR-10."),
    _claim("C5", "Absolute gains: ER+GMED over ER +1.72 / +1.67 / +1.79 / +0.94 (Split MNIST, "
                 "CIFAR-10, mini-ImageNet, Rotated MNIST); MIR+GMED over MIR +2.98 / +1.07 / +1.28."),
    _claim("C6", "Among non-iid methods MIR+GMED is best on Split, Permuted and Rotated MNIST and "
                 "Split CIFAR-10, ER+GMED on Split mini-ImageNet."),
    _claim("C7", "iid offline is the best entry on every dataset (upper bound)."),
    _claim("C8", "Random Edit is worse than GMED on all five datasets."),
    _claim("C9", "Hindsight Edit is worse than GMED on all five datasets."),
    _claim("C10", "With the tuned beta, ER+GMED beats beta = 0 on Rotated MNIST and Split "
                  "mini-ImageNet."),
    _claim("C11", "ER+GMED beats ER at every tested memory size on Split MNIST, Rotated MNIST, "
                  "Split CIFAR-10 and Split mini-ImageNet."),
    _claim("C12", "Edited examples look almost identical to the originals."),
    _claim("C13", "Edit vectors of the first two Split MNIST tasks cluster by label."),
    _claim("C14", "Grid search on the first three tasks selects the (alpha, beta) of Table 1."),
]}

ARTIFACTS = [
    Artifact("gmed.table1", "Selected editing stride and regularisation strength (Table 1)",
             "table", "The tuning protocol of §4.7 rerun: grid over α × β, validation on the "
             "first three tasks.", runs.tuning, _render("render_table1"), [CLAIMS["C14"]],
             tuning=True),
    Artifact("gmed.table2", "Final accuracy of task-free methods (Table 2)", "table",
             "Final accuracy (%) after one pass over the stream, mean ± sd over seeds; memory "
             "500 (10,000 for mini-ImageNet).", runs.table2, _render("render_table2"),
             [CLAIMS[c] for c in ("C1", "C2", "C3", "C4", "C5", "C6", "C7")]),
    Artifact("gmed.table3", "GMED vs Random Edit vs Hindsight Edit (Table 3)", "table",
             "Editing ablations, built on ER.", runs.table3, _render("render_table3"),
             [CLAIMS["C8"], CLAIMS["C9"]]),
    Artifact("gmed.fig3", "Effect of the regularisation term (Figure 3)", "figure",
             "ER+GMED with the tuned β and with β = 0.", runs.fig3, _render("render_fig3"),
             [CLAIMS["C10"]]),
    Artifact("gmed.fig4", "ER vs ER+GMED across memory sizes (Figure 4)", "figure",
             "Final accuracy against the number of memory slots.", runs.fig4,
             _render("render_fig4"), [CLAIMS["C11"]]),
    Artifact("gmed.fig5", "Edited memory examples (Figure 5)", "figure",
             "Original, edited and difference images of memory examples of the first two "
             "Split MNIST tasks, seed-0 ER+GMED run.", runs.edit_log, _render("render_fig5"),
             [CLAIMS["C12"]]),
    Artifact("gmed.fig6", "t-SNE of the edit vectors (Figure 6)", "figure",
             "Edit vectors Δx of the first two Split MNIST tasks' memory examples, coloured "
             "by label.", runs.edit_log, _render("render_fig6"), [CLAIMS["C13"]]),
]

# Where a method from outside clrepro (config `methods:`) runs: beside ER, task-free; a grid
# of its values is selected like GMED's alpha/beta (§4.7, validation sets of three tasks)
_BESIDE_ER = UserSlot("er", "task_free", tuning=runs.user_tuning)
_USER = {"gmed.table2": _BESIDE_ER, "gmed.fig4": _BESIDE_ER,
         "gmed.table1": "GMED's own alpha x beta grid (a grid of yours is tuned beside your runs)",
         "gmed.table3": "an ablation of GMED's editing direction",
         "gmed.fig3": "an ablation of GMED's regulariser beta",
         "gmed.fig5": "pictures of GMED's edited memory", "gmed.fig6": "pictures of GMED's edits"}
for _artifact in ARTIFACTS:
    _artifact.user = _USER[_artifact.id]

PAPER = Paper.from_protocol("gmed2021", "Gradient Based Memory Editing for Task-Free Continual Learning",
                           "X. Jin, J. Du, X. Ren. 2021 (pre-NeurIPS version).", protocol, ARTIFACTS)
