"""The GMED paper's numbers (spec gmed-2021.md §3). Reproduced numbers never come from here."""

from clrepro.papers.gmed2021.protocol import TABLE1  # noqa: F401  (Table 1: alpha, beta)

DATASETS = ("split_mnist", "perm_mnist", "rot_mnist", "split_cifar10", "split_miniimagenet")

# Table 2: final accuracy (%), mean and sd over 10 runs; significance marks of the paper
TABLE2 = {
    "finetune": [(18.80, 0.6), (66.34, 2.6), (41.24, 1.5), (18.49, 0.2), (2.84, 0.4)],
    "iid_online": [(85.99, 0.3), (73.58, 1.5), (81.30, 1.3), (62.23, 1.5), (17.53, 1.6)],
    "agem": [(29.02, 5.3), (72.17, 1.5), (50.77, 1.9), (18.49, 0.6), (2.92, 0.3)],
    "gem": [(87.18, 1.3), (78.23, 1.2), (76.49, 0.8), (20.05, 1.4), (11.27, 3.4)],
    "gss": [(84.16, 2.6), (77.43, 1.4), (73.66, 1.1), (28.02, 1.3), (16.19, 0.7)],
    "bgd": [(13.54, 5.1), (19.38, 3.0), (77.94, 0.9), (18.23, 0.5), (24.71, 0.8)],
    "hal": [(77.92, 4.2), (77.55, 4.2), (78.48, 1.5), (32.06, 1.5), (21.18, 2.1)],
    "er": [(80.96, 2.3), (79.69, 1.0), (76.95, 1.7), (33.34, 1.5), (26.00, 1.0)],
    "mir": [(84.88, 1.7), (79.96, 1.3), (78.30, 1.0), (34.47, 2.0), (25.01, 1.3)],
    "er_gmed": [(82.68, 2.1), (79.70, 1.1), (77.89, 0.9), (35.01, 1.5), (27.79, 0.7)],
    "mir_gmed": [(87.86, 1.1), (80.11, 1.2), (79.16, 0.9), (35.54, 1.9), (26.29, 1.2)],
    "iid_offline": [(93.87, 0.5), (87.40, 1.1), (91.38, 0.7), (75.17, 0.7), (36.54, 1.4)],
}
TABLE2_STARS = {"er_gmed": ["**", "", "*", "*", "**"], "mir_gmed": ["**", "*", "**", "", "*"]}

# Table 3: GMED vs Random Edit vs Hindsight Edit, final accuracy (%)
TABLE3 = {
    "er_gmed": TABLE2["er_gmed"],  # the spec: this column repeats Table 2's ER+GMED row
    "er_random_edit": [(80.13, 2.9), (78.85, 0.2), (76.40, 1.7), (34.72, 1.6), (25.73, 2.0)],
    "er_hindsight_edit": [(70.32, 3.9), (79.23, 0.6), (76.33, 1.1), (33.08, 3.3), (27.27, 1.7)],
}


def table2(method: str, dataset: str) -> tuple[float, float] | None:
    row = TABLE2.get(method)
    return row[DATASETS.index(dataset)] if row else None


def table3(method: str, dataset: str) -> tuple[float, float] | None:
    row = TABLE3.get(method)
    return row[DATASETS.index(dataset)] if row else None


def matches(ours: float, paper: tuple[float, float]) -> bool:
    """Spec README §1.4: |mean_ours - mean_paper| <= max(2 sd_paper, 1.0 point)."""
    mean, sd = paper
    return abs(ours - mean) <= max(2 * sd, 1.0)
