"""The paper's numbers (spec drl-2020.md §3): Figure 1's correlations and the binary
classifiers' test accuracies. Tables 1-3 have no numbers in the target text (D7)."""

# (problem, y axis) -> (r of different-class pairs, r of same-class pairs); panel letters
# follow the spec's inferred mapping: (a) {7,9} features, (b) {7,9} representations,
# (c) {0,1} features, (d) {0,1} representations
FIG1_R = {((7, 9), "input"): (-0.37, 0.38), ((7, 9), "repr"): (-0.86, 0.71),
          ((0, 1), "input"): (-0.38, 0.36), ((0, 1), "repr"): (-0.85, 0.79)}
PANELS = {((7, 9), "input"): "a", ((7, 9), "repr"): "b", ((0, 1), "input"): "c",
          ((0, 1), "repr"): "d"}
ACCURACY = {(0, 1): 99.95, (7, 9): 96.25}  # test accuracy (%) of the binary classifiers
