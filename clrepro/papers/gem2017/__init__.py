"""GEM — Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NIPS 2017."""

from clrepro.papers.base import Artifact, Paper
from clrepro.papers.gem2017 import artifacts as A
from clrepro.papers.gem2017 import protocol, runs
from clrepro.papers.gem2017.claims import CLAIMS

ARTIFACTS = [
    Artifact("gem.fig1a", "ACC, BWT and FWT per method and benchmark (Figure 1, left)", "figure",
             "Final average accuracy (ACC), backward (BWT) and forward transfer (FWT, against "
             "the random-initialisation baseline) after the whole stream.",
             runs.fig1a, A.render_fig1a, [CLAIMS[c] for c in ("C1", "C2", "C3")]),
    Artifact("gem.fig1b", "Accuracy on the first task over the stream (Figure 1, right)", "figure",
             "Test accuracy on task 1, evaluated before training, every 100 mini-batches and "
             "at each task switch; x axis in tasks learned.",
             runs.fig1a, A.render_fig1b, [CLAIMS["C4"]]),
    Artifact("gem.table1", "CPU training time of the MNIST experiments (Table 1)", "table",
             "Seconds of training (evaluation excluded) per run, one CPU thread.",
             runs.table1, A.render_table1, [CLAIMS["C5"]]),
    Artifact("gem.table2", "ACC vs episodic memory size, GEM vs iCaRL, CIFAR-100 (Table 2)", "table",
             "Final ACC for total memory sizes; GEM stores size/T examples per task, iCaRL "
             "shares the total among all classes seen.",
             runs.table2, A.render_table2, [CLAIMS[c] for c in ("C6", "C7", "C11")]),
    Artifact("gem.table3", "ACC/BWT on MNIST Rotations vs epochs per task (Table 3)", "table",
             "Each task's examples are shown e times in random order before the next task; "
             "the first row trains on all tasks' data shuffled together.",
             runs.table3, A.render_table3, [CLAIMS[c] for c in ("C8", "C9", "C10")]),
]

PAPER = Paper(
    key="gem2017",
    title="Gradient Episodic Memory for Continual Learning",
    citation="D. Lopez-Paz and M. Ranzato. NIPS 2017.",
    protocol_version=protocol.PROTOCOL_VERSION,
    benchmarks=protocol.benchmarks,
    hyperparams=protocol.hyperparams,
    resources=protocol.resources,
    artifacts=ARTIFACTS,
    option_defaults=protocol.OPTION_DEFAULTS,
)
