"""The paper's own numbers (spec gem-2017.md §3). Reproduced numbers never come from here."""

TABLE1_SECONDS = {  # CPU training time (s)
    "permutations": {"single": 11, "independent": 11, "multimodal": 14, "ewc": 179, "gem": 77},
    "rotations": {"single": 11, "independent": 16, "multimodal": 13, "ewc": 169, "gem": 135},
}
TABLE2_ACC = {  # ACC vs total memory size on CIFAR-100
    "gem": {200: 0.487, 1280: 0.579, 2560: 0.633, 5120: 0.654},
    "icarl": {200: 0.436, 1280: 0.494, 2560: 0.500, 5120: 0.508},
}
TABLE3_ACC_BWT = {  # MNIST Rotations, epochs -> (ACC, BWT)
    "iid": {1: (0.83, -0.00), 2: (0.87, -0.00), 5: (0.89, -0.00)},
    "single": {1: (0.53, -0.08), 2: (0.49, -0.25), 5: (0.43, -0.40)},
    "independent": {1: (0.56, -0.00), 2: (0.64, -0.00), 5: (0.67, -0.00)},
    "multimodal": {1: (0.76, -0.02), 2: (0.72, -0.11), 5: (0.59, -0.28)},
    "ewc": {1: (0.55, -0.19), 2: (0.59, -0.17), 5: (0.61, -0.11)},
    "gem": {1: (0.86, 0.05), 2: (0.88, 0.02), 5: (0.89, -0.02)},
}
RESNET_PARAMETERS = 1_109_240  # §4.4: p of the CIFAR-100 network (C11)
TOLERANCE_FRACTION = 0.03  # spec README §1.4: fractions match within +-0.03
