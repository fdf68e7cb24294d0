"""Meta-test on new unlabeled data: cluster it, embed it, score its anomalies, optionally after
unsupervised fine-tuning on its own images. The numeric work lives in `umeta.numeric`; the
scikit-learn faces of these tools are in `umeta.estimators`."""

from umeta.adapt.anomaly import NormalProfile, anomaly_scores, fit_normal
from umeta.adapt.cluster import cluster_dataset, search_range
from umeta.adapt.embed import (
                               Embedding,
                               ShapeError,
                               embed_dataset,
                               embed_inputs,
                               embedding_quality,
                               model_inputs,
)
from umeta.adapt.explain import (
                                 ClusterExplanation,
                                 assignment_confidence,
                                 explain_clusters,
                                 prototype_indices,
                                 ranked_members,
)
from umeta.adapt.finetune import finetune, finetuned_embeddings

__all__ = ["ClusterExplanation", "Embedding", "NormalProfile", "ShapeError", "anomaly_scores",
           "assignment_confidence", "cluster_dataset", "embed_dataset", "embed_inputs",
           "embedding_quality", "explain_clusters", "finetune", "finetuned_embeddings",
           "fit_normal", "model_inputs", "prototype_indices", "ranked_members", "search_range"]
