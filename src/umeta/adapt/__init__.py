"""Meta-test on new unlabeled data: cluster it, embed it, score its anomalies, optionally after
unsupervised fine-tuning on its own images."""

from umeta.adapt.anomaly import NormalProfile, anomaly_scores, fit_normal, kth_neighbour_distance
from umeta.adapt.cluster import (
    Clustering,
    cluster_dataset,
    cluster_tasks,
    estimate_n_clusters,
    kmeans,
    refine_prototypes,
    silhouette_scores,
)
from umeta.adapt.embed import PCA, Embedding, embed_dataset, embedding_quality, features, fit_pca
from umeta.adapt.finetune import finetune, finetuned_features

__all__ = [
    "PCA", "Clustering", "Embedding", "NormalProfile", "anomaly_scores", "cluster_dataset",
    "cluster_tasks", "embed_dataset", "embedding_quality", "estimate_n_clusters", "features",
    "finetune", "finetuned_features", "fit_normal", "fit_pca", "kmeans", "kth_neighbour_distance",
    "refine_prototypes", "silhouette_scores",
]
