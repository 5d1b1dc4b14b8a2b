"""DRL + BER — Chen, Diethe, Flach, "Bypassing gradients re-projection with episodic memories
in online continual learning" (CLVision workshop at CVPR 2020; arXiv 2006.11234 v1)."""

from functools import partial

from clrepro.papers.base import Artifact, Paper, UserSlot, claim_in, render_in
from clrepro.papers.drl2020 import protocol, runs

_claim = partial(claim_in, __name__)
_render = partial(render_in, __name__)

CLAIMS = {c.id: c for c in [
    _claim("C1", "Gradient similarity correlates weakly with raw-pixel similarity: r = -0.37 / "
                 "-0.38 for different-class and 0.38 / 0.36 for same-class pairs."),
    _claim("C2", "Gradient similarity correlates strongly with representation similarity: r = "
                 "-0.86 / -0.85 for different-class and 0.71 / 0.79 for same-class pairs."),
    _claim("C3", "In all four (task x pair type) cases |r| with representations exceeds |r| with "
                 "raw pixels."),
    _claim("C4", "For {0,1} representation similarity separates same- from different-class "
                 "pairs perfectly; that classifier reaches 99.95 % vs 96.25 % for {7,9}."),
    _claim("C5", "DRL on Disjoint MNIST lowers different-class representation similarities and "
                 "concentrates different-class gradient similarities around 0."),
    _claim("C6", "NI track: BER gives higher accuracy than ER."),
    _claim("C7", "Multi-Task-NC track: ER gives higher accuracy than BER."),
    _claim("C8", "NIC track: the plain shuffle strategy beats both ER and BER."),
    _claim("C9", "In general ResNeSt-50 beats ResNet-50, and adding DRL beats not adding it."),
]}

ARTIFACTS = [
    Artifact("drl.fig1", "Gradient vs input and representation similarity (Figure 1)", "figure",
             "Pairwise cosine similarities of test images of two binary classifiers: gradient "
             "similarity against pixel similarity (a, c) and representation similarity (b, d), "
             "with Pearson r per pair type beside the paper's.", runs.fig1, _render("render_fig1"),
             [CLAIMS[c] for c in ("C1", "C2", "C3", "C4")]),
    Artifact("drl.fig2", "Similarity distributions with and without DRL (Figure 2)", "figure",
             "Representation and gradient similarities of different- and same-class pairs after "
             "Disjoint MNIST trained with BER, with and without DRL.", runs.fig2,
             _render("render_fig2"), [CLAIMS["C5"]]),
    Artifact("drl.table1", "NI track (Table 1)", "table",
             "Accuracy after the stream per backbone, replay strategy and DRL.", runs.table1,
             _render("render_table1"), [CLAIMS["C6"]]),
    Artifact("drl.table2", "Multi-Task-NC track (Table 2)", "table",
             "Accuracy after the stream per backbone, replay strategy and DRL.", runs.table2,
             _render("render_table2"), [CLAIMS["C7"]]),
    Artifact("drl.table3", "NIC track (Table 3)", "table",
             "Accuracy after the stream per backbone, replay strategy and DRL; C9 reads all "
             "three tracks.", runs.all_tracks, _render("render_table3"),
             [CLAIMS["C8"], CLAIMS["C9"]]),
]

# Where a method from outside clrepro (config `methods:`) runs: beside ER without DRL on each
# track (NI: task-free, Multi-Task-NC: task-aware, NIC: class-incremental), with the run's
# backbone (pretrained at full scale)
_BESIDE_ER = UserSlot("replay_drl", lambda b: {"ni": "task_free", "mtnc": "task_aware",
                                               "nic": "class_incremental"}[protocol.parse(b)[0]],
                      reference_overrides=(("drl", False), ("replay", "er")),
                      keep_overrides=("backbone",), pretrained_scales=("full",))
_USER = {"drl.table1": _BESIDE_ER, "drl.table2": _BESIDE_ER, "drl.table3": _BESIDE_ER,
         "drl.fig1": "an analysis of DRL's pair similarities",
         "drl.fig2": "an analysis of DRL's pair similarities"}
for _artifact in ARTIFACTS:
    _artifact.user = _USER[_artifact.id]

PAPER = Paper.from_protocol("drl2020", "Discriminative Representation Loss and Balanced "
                            "Experience Replay on the CLVision 2020 challenge",
                            "Y. Chen, T. Diethe, P. Flach. CLVision workshop at CVPR 2020 "
                            "(arXiv 2006.11234 v1).", protocol, ARTIFACTS)
