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
from umeta.adapt.finetune import finetune, finetuned_embeddings

__all__ = ["Embedding", "NormalProfile", "ShapeError", "anomaly_scores", "cluster_dataset",
           "embed_dataset", "embed_inputs", "embedding_quality", "finetune",
           "finetuned_embeddings", "fit_normal", "model_inputs", "search_range"]
