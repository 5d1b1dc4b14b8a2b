"""2-D embeddings of high-dimensional vectors (t-SNE) and how well labels separate in them."""

from __future__ import annotations

import numpy as np


def tsne(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(vectors)
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(vectors)


def label_structure(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> dict[str, float]:
    """Silhouette score of the labels and 5-fold cross-validated k-NN label accuracy, in the
    original space (GMED spec §3, fig6 check: silhouette > 0, k-NN above chance)."""
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.model_selection import cross_val_score

    classes = np.unique(labels)
    if len(classes) < 2 or len(labels) <= k:
        return {"silhouette": float("nan"), "knn_accuracy": float("nan"),
                "chance": float("nan"), "n": int(len(labels))}
    folds = min(5, int(np.bincount(np.searchsorted(classes, labels)).min()))
    knn = (cross_val_score(KNeighborsClassifier(k), vectors, labels, cv=folds).mean()
           if folds >= 2 else float("nan"))
    return {"silhouette": float(silhouette_score(vectors, labels)), "knn_accuracy": float(knn),
            "chance": 1.0 / len(classes), "n": int(len(labels))}
