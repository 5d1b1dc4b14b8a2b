"""GEM — Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NIPS 2017."""

from functools import partial

from clrepro.papers.base import Artifact, Paper, UserSlot, claim_in, render_in
from clrepro.papers.gem2017 import protocol, runs

_claim = partial(claim_in, __name__)
_render = partial(render_in, __name__)


CLAIMS = {c.id: c for c in [
    _claim("C1", "On MNIST Permutations and Rotations, GEM's ACC is similar to or higher than "
                 "every baseline's, multimodal included."),
    _claim("C2", "GEM's ACC exceeds EWC's and single's on all three benchmarks."),
    _claim("C3", "GEM has the least negative (or a positive) BWT of all methods on each "
                 "benchmark, and its FWT is about 0 or positive."),
    _claim("C4", "GEM's accuracy on task 1 stays nearly constant while later tasks are learned "
                 "(single and EWC decline); on CIFAR-100 it ends above its value right after "
                 "task 1."),
    _claim("C5", "GEM trains faster than EWC on CPU on both MNIST benchmarks, while "
                 "single/independent/multimodal are fastest."),
    _claim("C6", "On CIFAR-100, GEM's ACC increases monotonically with memory size."),
    _claim("C7", "GEM's ACC exceeds iCaRL's at each memory size."),
    _claim("C8", "On Rotations, more epochs make single and multimodal forget more (BWT falls) "
                 "and lose ACC."),
    _claim("C9", "EWC's and GEM's ACC increase with epochs, and GEM's BWT beats EWC's at every "
                 "epoch setting."),
    _claim("C10", "With one epoch GEM reaches at least the iid 'single, shuffled data' oracle; "
                  "at 5 epochs both reach the same ACC."),
    _claim("C11", "The CIFAR-100 network has p = 1,109,240 parameters."),
]}


ARTIFACTS = [
    Artifact("gem.fig1a", "ACC, BWT and FWT per method and benchmark (Figure 1, left)", "figure",
             "Final average accuracy (ACC), backward (BWT) and forward transfer (FWT, against "
             "the random-initialisation baseline) after the whole stream.",
             runs.fig1a, _render("render_fig1a"), [CLAIMS[c] for c in ("C1", "C2", "C3")]),
    Artifact("gem.fig1b", "Accuracy on the first task over the stream (Figure 1, right)", "figure",
             "Test accuracy on task 1, evaluated before training, every 100 mini-batches and "
             "at each task switch; x axis in tasks learned.",
             runs.fig1a, _render("render_fig1b"), [CLAIMS["C4"]]),
    Artifact("gem.table1", "CPU training time of the MNIST experiments (Table 1)", "table",
             "Seconds of training (evaluation excluded) per run, one CPU thread.",
             runs.table1, _render("render_table1"), [CLAIMS["C5"]]),
    Artifact("gem.table2", "ACC vs episodic memory size, GEM vs iCaRL, CIFAR-100 (Table 2)", "table",
             "Final ACC for total memory sizes; GEM stores size/T examples per task, iCaRL "
             "shares the total among all classes seen.",
             runs.table2, _render("render_table2"), [CLAIMS[c] for c in ("C6", "C7", "C11")]),
    Artifact("gem.table3", "ACC/BWT on MNIST Rotations vs epochs per task (Table 3)", "table",
             "Each task's examples are shown e times in random order before the next task; "
             "the first row trains on all tasks' data shuffled together.",
             runs.table3, _render("render_table3"), [CLAIMS[c] for c in ("C8", "C9", "C10")]),
]

# Where a method from outside clrepro (config `methods:`) runs: beside GEM, task-aware
for _artifact in ARTIFACTS:
    _artifact.user = UserSlot("gem", "task_aware")

PAPER = Paper.from_protocol("gem2017", "Gradient Episodic Memory for Continual Learning",
                           "D. Lopez-Paz and M. Ranzato. NIPS 2017.", protocol, ARTIFACTS)
