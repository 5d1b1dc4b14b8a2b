"""The Mnemonics paper's own numbers (spec mnemonics-2020.md §3). Reproduced numbers never
come from here. Rows: method (Table 1) or exemplar variant (Table 2); columns in the order
of SETTINGS."""

SETTINGS = [("cifar100", 5), ("cifar100", 10), ("cifar100", 25), ("imagenet_subset", 5),
            ("imagenet_subset", 10), ("imagenet_subset", 25), ("imagenet", 5), ("imagenet", 10),
            ("imagenet", 25)]

# Table 1: average incremental accuracy (%) and forgetting rate (%)
TABLE1_ACC = {
    "lwf": [49.59, 46.98, 45.51, 53.62, 47.64, 44.32, 44.35, 38.90, 36.87],
    "lwf_ours": [54.43, 52.67, 51.75, 61.23, 59.24, 59.71, 52.70, 50.37, 50.79],
    "icarl": [57.12, 52.66, 48.22, 65.44, 59.88, 52.97, 51.50, 46.89, 43.14],
    "icarl_ours": [59.88, 57.53, 54.30, 72.55, 70.29, 67.12, 60.61, 58.62, 53.46],
    "bic": [59.36, 54.20, 50.00, 70.07, 64.96, 57.73, 62.65, 58.72, 53.47],
    "bic_ours": [60.67, 58.11, 55.51, 73.16, 71.37, 68.41, 64.63, 62.71, 60.20],
    "lucir": [63.17, 60.14, 57.54, 70.84, 68.32, 61.44, 64.45, 61.57, 56.56],
    "lucir_ours": [64.95, 63.25, 63.70, 73.30, 72.17, 71.50, 66.15, 63.12, 63.08],
}
TABLE1_F = {
    "lwf": [43.36, 43.58, 41.66, 55.32, 57.00, 55.12, 48.70, 47.94, 49.84],
    "lwf_ours": [38.38, 36.66, 33.50, 39.56, 40.44, 39.99, 37.46, 38.42, 37.95],
    "icarl": [31.88, 34.10, 36.48, 43.40, 45.84, 47.60, 26.03, 33.76, 38.80],
    "icarl_ours": [25.28, 27.02, 28.22, 20.00, 24.36, 29.32, 20.26, 24.04, 17.49],
    "bic": [31.42, 32.50, 34.60, 27.04, 31.04, 37.88, 25.06, 28.34, 33.17],
    "bic_ours": [22.42, 24.50, 25.52, 14.52, 17.40, 23.96, 18.32, 19.72, 20.50],
    "lucir": [18.70, 21.34, 26.46, 31.88, 33.48, 35.40, 24.08, 27.29, 30.30],
    "lucir_ours": [11.64, 10.90, 9.96, 10.20, 9.88, 11.76, 13.63, 13.45, 14.40],
}

# Table 2 (CIFAR-100 and ImageNet-Subset, N = 5, 10, 25): LUCIR with weight transfer
TABLE2_SETTINGS = SETTINGS[:6]
TABLE2_ACC = {
    "random_noadj": [63.06, 62.30, 62.06, 71.34, 70.02, 68.24],
    "random": [63.51, 62.47, 61.59, 71.67, 70.31, 68.02],
    "herding_noadj": [63.39, 61.50, 60.95, 71.22, 69.67, 67.45],
    "herding": [63.56, 61.79, 61.05, 72.01, 70.02, 68.00],
    "ours_noadj": [63.97, 62.34, 62.31, 72.45, 70.57, 70.78],
    "ours": [64.95, 63.26, 63.70, 73.30, 72.17, 71.50],
}
TABLE2_F = {
    "random_noadj": [19.38, 15.90, 13.91, 21.67, 17.89, 16.38],
    "random": [17.24, 16.01, 13.23, 17.05, 15.76, 13.27],
    "herding_noadj": [21.02, 21.18, 20.76, 21.53, 18.15, 17.96],
    "herding": [17.02, 19.76, 16.87, 21.93, 16.32, 15.91],
    "ours_noadj": [13.78, 12.35, 10.65, 20.76, 16.47, 12.68],
    "ours": [11.64, 10.90, 9.96, 10.20, 9.88, 11.76],
}

# Fig. 4: LUCIR w/ ours on CIFAR-100 ends at 56.19 % (N = 5) and 56.52 % (N = 25)
FIG4_FINAL = {("cifar100", 5): 56.19, ("cifar100", 25): 56.52}
# C4: LUCIR w/ ours minus LUCIR on CIFAR-100 (derived)
C4_GAINS = {5: 1.78, 10: 3.11, 25: 6.16}


def cell(table: dict, row: str, setting: tuple[str, int], settings=SETTINGS) -> float | None:
    values = table.get(row)
    return values[settings.index(setting)] if values and setting in settings else None
