"""The bottom layer: numeric helpers shared by tasks, learners and adaptation tools.

Nothing here knows about learners, data sets or configs; everything takes and returns tensors.
"""

from umeta.numeric.clustering import (
    Clustering,
    cluster_tasks,
    estimate_n_clusters,
    kmeans,
    nearest_center,
    refine_prototypes,
    silhouette_scores,
)
from umeta.numeric.columns import standardize_columns
from umeta.numeric.distances import kth_neighbour_distance, squared_distances
from umeta.numeric.pca import PCA, fit_pca
from umeta.numeric.random import as_generator, seeded_generator

__all__ = ["PCA", "Clustering", "as_generator", "cluster_tasks", "estimate_n_clusters", "fit_pca",
           "kmeans", "kth_neighbour_distance", "nearest_center", "refine_prototypes",
           "seeded_generator", "silhouette_scores", "squared_distances", "standardize_columns"]
