"""scikit-learn estimators over a meta-trained model: cluster, embed, detect anomalies.

Each takes ``learner``: a :class:`~umeta.learners.Learner`, the path of a checkpoint, or None to
use the input features as they are (then the estimators are classical baselines: k-means++,
PCA, k-NN / prototype distance). Inputs are 2-D arrays (N, D) or image arrays (N, H, W) /
(N, C, H, W); with a learner they are reshaped to its image shape ``input_shape_`` and uint8
images are scaled to [0, 1]. Outputs are NumPy arrays.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, OutlierMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor, nn

from umeta.adapt.anomaly import NormalProfile, fit_normal
from umeta.adapt.cluster import REFINEMENTS, cluster_tasks, estimate_n_clusters, squared_distances
from umeta.adapt.embed import features, fit_pca
from umeta.adapt.finetune import check_finetune_args, finetune
from umeta.errors import UmetaError


class _MetaEstimator(BaseEstimator):
    """Shared input handling: resolve the learner, validate and featurise X."""

    def _resolve_learner(self) -> tuple[nn.Module | None, torch.device]:
        if self.learner is None:
            return None, torch.device(self.device or "cpu")
        if isinstance(self.learner, (str, os.PathLike)):
            from umeta.checkpoint import load_learner
            from umeta.pretrained import BUILTIN, builtin_checkpoint

            device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            path = builtin_checkpoint() if self.learner == BUILTIN else self.learner
            return load_learner(path, device), device
        if not isinstance(self.learner, nn.Module):
            raise UmetaError(f"learner must be a Learner, a checkpoint path or None; got "
                             f"{type(self.learner).__name__}")
        param = next(iter(self.learner.parameters()), None)
        current = torch.device("cpu") if param is None else param.device
        device = torch.device(self.device) if self.device is not None else current
        # a copy, so that fitting never changes the model passed in
        return (self.learner if device == current else copy.deepcopy(self.learner).to(device),
                device)

    def _infer_shape(self, learner: nn.Module, x: np.ndarray) -> tuple[int, int, int]:
        for shape in (self.input_shape, getattr(learner, "image_shape", None)):
            if shape is not None:
                return tuple(int(s) for s in shape)  # type: ignore[return-value]
        if x.ndim == 4:
            return x.shape[1:]
        if x.ndim == 3:
            return (1, *x.shape[1:])
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise UmetaError(f"cannot infer the image shape of {x.shape[1]} features; pass "
                             "input_shape=(C, H, W) or give images of shape (N, C, H, W)")
        return (1, side, side)

    def _features(self, X, *, reset: bool, min_samples: int = 1) -> Tensor:
        """Validated features (N, D) of X; ``reset`` (in fit) also resolves the learner."""
        return self._featurise(self._inputs(X, reset=reset, min_samples=min_samples),
                               min_samples)

    def _featurise(self, data: Tensor, min_samples: int = 1) -> Tensor:
        """Features (N, D) of inputs from :meth:`_inputs`."""
        return features(self.learner_, data, normalize=self.normalize,
                        batch_size=self.batch_size, min_samples=min_samples)

    def _inputs(self, X, *, reset: bool, min_samples: int = 1) -> Tensor:
        """X validated, as a tensor on ``device_``: images (N, C, H, W) with a learner, else
        (N, D); ``reset`` (in fit) also resolves the learner."""
        if isinstance(X, Tensor):
            X = X.detach().cpu().numpy()
        scale = self.learner is not None and getattr(X, "dtype", None) == np.uint8
        x = check_array(X, allow_nd=True, dtype=[np.float64, np.float32],
                        ensure_min_samples=min_samples, input_name="X")
        if x.ndim > 4:
            raise UmetaError(f"X must be (N, D), (N, H, W) or (N, C, H, W); got shape {x.shape}")
        if reset:
            self.learner_, self.device_ = self._resolve_learner()
            self.input_shape_ = (None if self.learner_ is None
                                 else self._infer_shape(self.learner_, x))
        if self.learner_ is not None:
            self._check_image_shape(x)
        flat = validate_data(self, x.reshape(len(x), -1), reset=reset)
        if scale:
            flat = flat / 255.0
        data = torch.tensor(flat, device=self.device_)
        if self.learner_ is not None:
            data = data.view(len(data), *self.input_shape_)
        return data

    def _check_image_shape(self, x: np.ndarray) -> None:
        c, h, w = self.input_shape_
        fits = (x.ndim == 2 and x.shape[1] == c * h * w) or (
            x.ndim == 3 and c == 1 and x.shape[1:] == (h, w)) or x.shape[1:] == (c, h, w)
        if not fits:
            raise UmetaError(f"X of shape {x.shape} does not fit the model's images of shape "
                             f"{(c, h, w)}; give (N, {c}, {h}, {w}) images or rows of {c * h * w}")

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))


class MetaClusterer(ClusterMixin, _MetaEstimator):
    """k-means++ in the feature space of a meta-trained model.

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (a small label-free model
        meta-trained on the built-in glyphs on first use and cached; see `umeta.pretrained`).
        The meta-trained model or its checkpoint path; None clusters the inputs themselves.
    n_clusters : int or None, default=8
        None estimates it by the silhouette over ``k_range``.
    k_range : (int, int), default=(2, 10)
        Candidates (inclusive) when ``n_clusters`` is None.
    normalize : bool, default=False
        L2-normalise the features.
    refine : {"none", "soft", "balanced"}, default="none"
        Prototype refinement after k-means (see :func:`umeta.adapt.refine_prototypes`).
    finetune_steps : int, default=0
        Before clustering, fine-tune a copy of the learner for this many Adam steps of the
        label-free UMTRA objective on X's own images (:func:`umeta.adapt.finetune`); 0 is off.
        ``predict`` then uses the fine-tuned copy, ``learner_``.
    finetune_lr : float, default=1e-4
        Its learning rate.
    n_init : int, default=10
        k-means restarts, run at once.
    max_iter : int, default=300
    tol : float, default=1e-4
    input_shape : (C, H, W) or None, default=None
        Image shape of the learner; None infers it from the learner or from X.
    device : str or None, default=None
        Where to compute; None uses the learner's device (CPU without a learner).
    batch_size : int, default=1024
        Images per forward pass.
    random_state : int, RandomState or None, default=0

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters_, n_features_out)
        In the feature space of the learner.
    n_clusters_ : int
    inertia_ : float
    n_iter_ : int
        k-means iterations run.
    learner_ : Learner or None
        The model whose features were clustered (the fine-tuned copy with ``finetune_steps``).
    input_shape_ : (C, H, W) or None
    device_ : torch.device
    n_features_in_ : int
        Values per input sample.
    """

    def __init__(self, learner=None, n_clusters: int | None = 8, *, k_range=(2, 10),
                 normalize: bool = False, refine: str = "none", finetune_steps: int = 0,
                 finetune_lr: float = 1e-4, n_init: int = 10, max_iter: int = 300,
                 tol: float = 1e-4, input_shape=None, device=None, batch_size: int = 1024,
                 random_state=0) -> None:
        self.learner = learner
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.normalize = normalize
        self.refine = refine
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.input_shape = input_shape
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X, y=None) -> "MetaClusterer":
        """Cluster X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array (n_samples, [C,] H, W)
        y : ignored

        Returns
        -------
        self
        """
        if self.refine not in REFINEMENTS:
            raise UmetaError(f"unknown refine {self.refine!r}; choose one of: "
                             f"{', '.join(REFINEMENTS)}")
        check_finetune_args(self.finetune_steps, self.finetune_lr)
        data = self._inputs(X, reset=True, min_samples=2)
        seed = self._seed()
        if self.finetune_steps:
            if self.learner_ is None:
                raise UmetaError(f"finetune_steps={self.finetune_steps} fine-tunes a model: pass "
                                 f"a learner (or a checkpoint), or set finetune_steps=0")
            self.learner_ = finetune(self.learner_, data, steps=self.finetune_steps,
                                     lr=self.finetune_lr, seed=seed)
        feats = self._featurise(data, min_samples=2)
        gen = torch.Generator(device=feats.device).manual_seed(seed)
        k = self.n_clusters
        if k is None:
            k = estimate_n_clusters(feats, tuple(self.k_range), n_init=self.n_init,
                                    max_iter=self.max_iter, seed=gen)
        result = cluster_tasks(feats[None], k, n_init=self.n_init, max_iter=self.max_iter,
                               tol=self.tol, refine=self.refine, seed=gen)
        self.labels_ = result.labels[0].cpu().numpy()
        self.cluster_centers_ = result.centers[0].cpu().numpy()
        self.n_clusters_ = int(k)
        self.inertia_ = float(result.inertia[0])
        self.n_iter_ = result.n_iter
        return self

    def predict(self, X) -> np.ndarray:
        """Index of the nearest cluster centre.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self)
        feats = self._features(X, reset=False)
        centers = torch.as_tensor(self.cluster_centers_, device=feats.device, dtype=feats.dtype)
        return squared_distances(feats[None], centers[None])[0].argmin(-1).cpu().numpy()


class MetaEmbedder(TransformerMixin, _MetaEstimator):
    """Meta-learned features followed by PCA to ``n_components`` dimensions.

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (a small label-free model
        meta-trained on the built-in glyphs on first use and cached; see `umeta.pretrained`).
        None makes this plain (exact, deterministic) PCA.
    n_components : int, default=2
    normalize : bool, default=False
        L2-normalise the features before PCA.
    input_shape, device, batch_size : see :class:`MetaClusterer`

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features_out)
    mean_ : ndarray of shape (n_features_out,)
    explained_variance_ : ndarray of shape (n_components,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    learner_, input_shape_, device_, n_features_in_ : see :class:`MetaClusterer`
    """

    def __init__(self, learner=None, n_components: int = 2, *, normalize: bool = False,
                 input_shape=None, device=None, batch_size: int = 1024) -> None:
        self.learner = learner
        self.n_components = n_components
        self.normalize = normalize
        self.input_shape = input_shape
        self.device = device
        self.batch_size = batch_size

    def fit(self, X, y=None) -> "MetaEmbedder":
        """Fit the projection on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array (n_samples, [C,] H, W)
        y : ignored

        Returns
        -------
        self
        """
        feats = self._features(X, reset=True, min_samples=2)
        n, dim = feats.shape
        if not 1 <= self.n_components <= min(n, dim):
            raise UmetaError(f"n_components={self.n_components} must be between 1 and "
                             f"min(n_samples, n_features)={min(n, dim)} (n_samples={n}, "
                             f"n_features={dim})")
        pca = fit_pca(feats, self.n_components)
        self.components_ = pca.components.cpu().numpy()
        self.mean_ = pca.mean.cpu().numpy()
        self.explained_variance_ = pca.explained_variance.cpu().numpy()
        self.explained_variance_ratio_ = pca.explained_variance_ratio.cpu().numpy()
        return self

    def transform(self, X) -> np.ndarray:
        """Embed X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        feats = self._features(X, reset=False)
        mean = torch.as_tensor(self.mean_, device=feats.device, dtype=feats.dtype)
        comps = torch.as_tensor(self.components_, device=feats.device, dtype=feats.dtype)
        return ((feats - mean) @ comps.T).cpu().numpy()


class MetaAnomalyDetector(OutlierMixin, _MetaEstimator):
    """Anomaly detection by distance to normal data in a meta-learned feature space.

    ``fit`` takes normal samples. ``score_samples`` is minus the distance to the
    ``n_neighbors``-th nearest normal sample (method "knn") or to the nearest normal prototype
    ("prototype"): the lower, the more abnormal. With "knn", scoring the training samples
    themselves counts each as its own nearest neighbour; the threshold is set without that.

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (a small label-free model
        meta-trained on the built-in glyphs on first use and cached; see `umeta.pretrained`).
    method : {"knn", "prototype"}, default="knn"
    n_neighbors : int, default=1
    n_prototypes : int, default=1
        Prototypes of method "prototype": the normal mean, or k-means centres.
    contamination : float, default=0.1
        Fraction of the training samples the threshold ``offset_`` flags (in (0, 0.5]); for
        "knn" the training scores are leave-one-out.
    normalize : bool, default=False
    input_shape, device, batch_size, random_state : see :class:`MetaClusterer`

    Attributes
    ----------
    offset_ : float
        ``decision_function = score_samples - offset_``; negative means anomaly.
    reference_ : ndarray of shape (n_reference, n_features_out)
        Normal features ("knn") or prototypes ("prototype").
    learner_, input_shape_, device_, n_features_in_ : see :class:`MetaClusterer`
    """

    def __init__(self, learner=None, method: str = "knn", n_neighbors: int = 1,
                 n_prototypes: int = 1, contamination: float = 0.1, *, normalize: bool = False,
                 input_shape=None, device=None, batch_size: int = 1024, random_state=0) -> None:
        self.learner = learner
        self.method = method
        self.n_neighbors = n_neighbors
        self.n_prototypes = n_prototypes
        self.contamination = contamination
        self.normalize = normalize
        self.input_shape = input_shape
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X, y=None) -> "MetaAnomalyDetector":
        """Learn what normal data looks like.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Normal samples.
        y : ignored

        Returns
        -------
        self
        """
        if not 0.0 < self.contamination <= 0.5:
            raise UmetaError(f"contamination={self.contamination} must be in (0, 0.5]")
        feats = self._features(X, reset=True, min_samples=2)
        if self.method == "knn" and self.n_neighbors >= len(feats):
            raise UmetaError(f"n_neighbors={self.n_neighbors} needs more than that many normal "
                             f"samples; got n_samples={len(feats)}")
        if self.method == "prototype" and not 1 <= self.n_prototypes <= len(feats):
            raise UmetaError(f"n_prototypes={self.n_prototypes} must be between 1 and "
                             f"n_samples={len(feats)}")
        profile = fit_normal(feats, self.method, n_neighbors=self.n_neighbors,
                             n_prototypes=self.n_prototypes, seed=self._seed())
        train_scores = -profile.scores(feats, exclude_self=True).cpu().numpy()
        self.reference_ = profile.reference.cpu().numpy()
        self.offset_ = float(np.percentile(train_scores, 100.0 * self.contamination))
        return self

    def score_samples(self, X) -> np.ndarray:
        """Minus the distance to normal data (the lower, the more abnormal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self)
        feats = self._features(X, reset=False)
        reference = torch.as_tensor(self.reference_, device=feats.device, dtype=feats.dtype)
        profile = NormalProfile(reference, self.method, self.n_neighbors)
        return -profile.scores(feats).cpu().numpy().astype(np.float64)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies, shape (n_samples,)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for anomalies, +1 for normal samples, shape (n_samples,)."""
        return np.where(self.decision_function(X) < 0, -1, 1)
