"""The BLD paper's own numbers (spec bld-2020.md §3). Reproduced numbers never come from here.

Per-task final accuracy (%) T0..T(n-1) and the printed "Avg." of every table row, and the
printed memory-overhead columns of Tables 2-4 (bytes; "–" = None).
"""

# (dataset, tasks) -> method row -> (per-task accuracies, printed Avg.)
ACCURACY = {
    ("mnist", 2): {"mc_finetune": ([80.8, 99.6], 90.2), "batch_l2": ([91.7, 99.6], 95.7),
                   "bld": ([89.6, 99.5], 94.5), "lwf_single": ([98.2, 99.7], 98.9),
                   "lwf_offline": ([99.5, 99.8], 99.7)},
    ("cifar10", 2): {"mc_finetune": ([60.4, 85.6], 73.0), "batch_l2": ([70.7, 84.0], 77.4),
                     "bld": ([70.0, 86.0], 78.0), "lwf_single": ([75.7, 85.8], 80.7),
                     "lwf_offline": ([89.6, 93.0], 91.3),
                     "bld_alternated": ([57.8, 85.8], 71.8),
                     "bld_no_balancing": ([61.4, 86.3], 73.8)},
    ("svhn", 2): {"mc_finetune": ([78.9, 95.5], 87.2), "batch_l2": ([82.8, 96.2], 89.5),
                  "bld": ([88.2, 96.2], 92.2), "lwf_single": ([91.5, 95.6], 93.5),
                  "lwf_offline": ([93.9, 96.3], 95.1)},
    ("mnist", 5): {"mc_finetune": ([66.6, 68.0, 76.8, 91.8, 99.8], 80.6),
                   "batch_l2": ([54.9, 55.7, 85.7, 94.0, 99.8], 78.0),
                   "bld": ([78.0, 82.5, 93.0, 96.4, 99.7], 89.9),
                   "lwf_single": ([98.2, 99.4, 98.5, 99.8, 99.8], 99.1),
                   "lwf_offline": ([99.5, 99.6, 98.0, 99.8, 99.8], 99.3)},
    ("cifar10", 5): {"mc_finetune": ([59.6, 58.2, 66.8, 80.2, 97.0], 72.3),
                     "batch_l2": ([75.5, 65.3, 73.5, 81.3, 96.8], 78.5),
                     "bld": ([83.4, 83.2, 79.5, 88.1, 97.0], 86.2),
                     "lwf_single": ([81.2, 83.6, 81.1, 88.5, 96.5], 86.2),
                     "lwf_offline": ([93.8, 94.1, 91.6, 96.2, 98.3], 94.8),
                     "bld_alternated": ([77.7, 74.5, 70.2, 87.1, 96.9], 81.3),
                     "bld_no_balancing": ([78.5, 72.9, 74.9, 85.0, 96.9], 81.6)},
    ("svhn", 5): {"mc_finetune": ([65.9, 60.6, 77.5, 87.6, 98.4], 78.0),
                  "batch_l2": ([75.2, 61.8, 90.9, 93.4, 98.1], 81.3),
                  "bld": ([78.5, 79.6, 92.1, 95.7, 98.1], 88.8),
                  "lwf_single": ([78.9, 91.5, 94.3, 95.6, 98.2], 91.7),
                  "lwf_offline": ([97.7, 97.8, 97.2, 98.7, 98.9], 98.1)},
}

# dataset -> method row -> printed (intra-batch, inter-batch, data storage) in bytes
MEMORY = {
    "mnist": {"batch_l2": (44.8e6, None, None), "bld": (32e3, None, None),
              "lwf_single": (384e3, 384e3, 2e6), "lwf_offline": (384e3, 384e3, 2e6)},
    "cifar10": {"batch_l2": (44.8e6, None, None), "bld": (32e3, None, None),
                "lwf_single": (320e3, 320e3, 36.8e6), "lwf_offline": (320e3, 320e3, 36.8e6)},
    "svhn": {"batch_l2": (44.8e6, None, None), "bld": (32e3, None, None),
             "lwf_single": (469e3, 469e3, None), "lwf_offline": (469e3, 469e3, 47.2e6)},
}
TRAIN_IMAGES = {"mnist": 60_000, "cifar10": 50_000, "svhn": 73_257}  # §4.8
IMAGE_BYTES = {"mnist": 28 * 28, "cifar10": 32 * 32 * 3, "svhn": 32 * 32 * 3}  # raw uint8
PAPER_BATCH, PAPER_VIEWS = 20, 50


def printed_avg_inconsistencies() -> list[str]:
    """Rows whose printed Avg. differs from the mean of their per-task values by more than
    rounding (spec D3: SVHN L2 5-task prints 81.3, its values average 83.88)."""
    out = []
    for (dataset, tasks), rows in ACCURACY.items():
        for method, (values, avg) in rows.items():
            mean = sum(values) / len(values)
            if abs(mean - avg) > 0.1:
                out.append(f"{dataset} {tasks}-task {method}: printed Avg. {avg} but the per-task "
                           f"values average {mean:.2f}")
    return out
