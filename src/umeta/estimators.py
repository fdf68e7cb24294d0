"""scikit-learn estimators over a meta-trained model: cluster, embed, detect anomalies.

Each is a thin scikit-learn face of one adaptation tool: `MetaClusterer` of
:func:`umeta.adapt.cluster_dataset`, `MetaEmbedder` of :func:`umeta.adapt.embed_dataset`,
`MetaAnomalyDetector` of :func:`umeta.adapt.fit_normal` / :class:`umeta.adapt.NormalProfile`.
Parameter limits are declared once, in the tool's module, and checked on entry to ``fit``.

Each takes ``learner``: a :class:`~umeta.learners.Learner`, the path of a checkpoint,
``"builtin"``, or None to use the input features as they are (then the estimators are classical
baselines: k-means++, PCA, k-NN / prototype distance). Inputs are 2-D arrays (N, D) or image
arrays (N, H, W) / (N, C, H, W), NumPy or torch; with an image learner they are shaped to its
image shape ``input_shape_`` and uint8 images are scaled to [0, 1]. Outputs are NumPy arrays.

**Tables.** With a table model (`umeta.learners.TableLearner`; ``"builtin"`` picks the built-in
table model for a 2-D float array, the image model otherwise), ``X`` is one table (N, D) of any
scale, NaN marking missing values (category codes are numbers like any other). ``fit`` encodes
the whole table (the model's context: the table, or a seeded sample of its rows when it is
long, see `umeta.models.table_encoder`) and keeps it as ``context_``; ``predict``,
``transform`` and ``score_samples`` encode new rows of the same columns against that context.
`MetaClusterer` runs spectral clustering on the model's row embeddings by default
(``algorithm="auto"``, where the table has at least 10 rows a cluster; a seeded sample of
`umeta.numeric.spectral.SPECTRAL_FIT_ROWS` rows of a longer table is fitted, every other row
taking its nearest fitted row's label) or k-means
(``algorithm="kmeans"``: fitted on a seeded sample of `TABLE_FIT_ROWS` rows, every row then
taking its nearest centre); asked for more clusters than the model's synthetic training tables
had, it clusters the table's standardised values instead (``space_``). `MetaEmbedder` runs PCA
on the embeddings, and `MetaAnomalyDetector` scores rows by the model's outlier logit
(``method`` and ``n_neighbors`` are not used).
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, OutlierMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor, nn

from umeta.adapt.anomaly import ANOMALY_LIMITS, NormalProfile, fit_normal
from umeta.adapt.cluster import (ALGORITHMS, CLUSTER_DATASET_LIMITS, auto_algorithm,
                                 cluster_dataset, search_range)
from umeta.adapt.embed import (EMBED_LIMITS, as_images, embed_dataset, embed_inputs,
                               is_table_model, table_inputs)
from umeta.adapt.explain import assignment_confidence, prototype_indices
from umeta.adapt.finetune import check_finetune_args, finetune
from umeta.errors import UmetaError
from umeta.numeric.clustering import nearest_center
from umeta.numeric.pca import PCA
from umeta.numeric.random import check_seed
from umeta.numeric.spectral import nearest_point_labels
from umeta.params import OneOf, ParamError, check_params, renamed_params


#: With a table model, k-means runs on a seeded sample of this many rows of a longer table
#: (every row then takes its nearest centre), as the classical baselines of B8 do.
TABLE_FIT_ROWS = 20_000


class _MetaEstimator(BaseEstimator):
    """Shared input handling: resolve the learner, validate X once, embed it."""

    #: Limits of the constructor arguments, checked on entry to ``fit``.
    _limits: ClassVar[dict[str, list]] = {}

    def _check_params(self) -> None:
        check_params(self.get_params(deep=False), self._limits)

    def _resolve_learner(self, kind: str = "images") -> tuple[nn.Module | None, torch.device]:
        """The learner and device; ``"builtin"`` is the built-in model of ``kind`` (a kind of
        `umeta.pretrained.SHIPPED`: "tables" where X is a 2-D float array)."""
        if self.learner is None:
            return None, torch.device(self.device or "cpu")
        if isinstance(self.learner, (str, os.PathLike)):
            from umeta.build import load_learner
            from umeta.pretrained import BUILTIN, load_builtin

            device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            if self.learner == BUILTIN:
                return load_builtin(kind, device), device
            return load_learner(self.learner, device), device
        if not isinstance(self.learner, nn.Module):
            raise UmetaError(f"learner must be a Learner, a checkpoint path or None; got "
                             f"{type(self.learner).__name__}")
        param = next(iter(self.learner.parameters()), None)
        current = torch.device("cpu") if param is None else param.device
        device = torch.device(self.device) if self.device is not None else current
        # a copy, so that fitting never changes the model passed in
        return (self.learner if device == current else copy.deepcopy(self.learner).to(device),
                device)

    def _infer_shape(self, learner: nn.Module, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The learner's image shape: ``input_shape``, the learner's own, or X's (``shape``)."""
        for known in (self.input_shape, getattr(learner, "image_shape", None)):
            if known is not None:
                return tuple(int(s) for s in known)  # type: ignore[return-value]
        if len(shape) == 4:
            return tuple(shape[1:])  # type: ignore[return-value]
        if len(shape) == 3:
            return (1, *shape[1:])  # type: ignore[return-value]
        side = math.isqrt(shape[1])
        if side * side != shape[1]:
            raise UmetaError(f"cannot infer the image shape of {shape[1]} features; pass "
                             "input_shape=(C, H, W) or give images of shape (N, C, H, W)")
        return (1, side, side)

    def _inputs(self, X: Any, *, reset: bool, min_samples: int = 1) -> Tensor:
        """X as a tensor on ``device_``: images of ``input_shape_`` with an image learner, one
        table (N, D) with a table learner, else as given; ``reset`` (in fit) also resolves the
        learner and records ``n_features_in_``."""
        if reset:
            table = False
            if isinstance(self.learner, str) and self.learner == "builtin":
                shaped = X if isinstance(X, Tensor) else np.asarray(X)
                table = shaped.ndim == 2 and shaped.dtype not in (np.uint8, torch.uint8)
            self.learner_, self.device_ = self._resolve_learner("tables" if table else "images")
        if is_table_model(self.learner_):
            return self._table(X, reset=reset, min_samples=min_samples)
        if isinstance(X, Tensor):
            x = X.detach()
        else:
            scale = self.learner is not None and getattr(X, "dtype", None) == np.uint8
            array = check_array(X, allow_nd=True, dtype=[np.float64, np.float32],
                                ensure_min_samples=min_samples, input_name="X")
            if array.ndim > 4:
                raise UmetaError(f"X must be (N, D), (N, H, W) or (N, C, H, W); got shape "
                                 f"{array.shape}")
            x = torch.tensor(array / 255.0 if scale else array)
        if reset:
            self.input_shape_ = (None if self.learner_ is None
                                 else self._infer_shape(self.learner_, tuple(x.shape)))
        if self.learner_ is not None:
            x = as_images(x, self.input_shape_)
        if isinstance(X, Tensor):
            n_features = math.prod(x.shape[1:]) if x.dim() > 1 else 0
            if reset:
                self.n_features_in_ = n_features
            elif n_features != self.n_features_in_:
                raise UmetaError(f"X has {n_features} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input")
        else:
            validate_data(self, x.reshape(len(x), -1).numpy(), reset=reset)
        return x.to(self.device_)

    def _table(self, X: Any, *, reset: bool, min_samples: int) -> Tensor:
        """One table (N, D) for a table learner, NaN allowed (`umeta.adapt.table_inputs`)."""
        if not isinstance(X, Tensor):
            try:
                X = np.asarray(X, dtype=np.float32)
            except (TypeError, ValueError):
                raise UmetaError("X must be a table of numbers (rows, columns), NaN for missing "
                                 "values; turn text columns into numbers (category codes) "
                                 "first") from None
        x = table_inputs(X, min_samples=min_samples)
        if reset:
            self.input_shape_ = None
            self.n_features_in_ = int(x.shape[1])
        elif x.shape[1] != self.n_features_in_:
            raise UmetaError(f"X has {x.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return x.to(self.device_)

    def _fit_table(self, x: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Encode the table x (a table learner's; ``seed`` draws the context rows of a long
        one): keep ``context_``; return its rows' embeddings (N, e) and outlier logits (N,)."""
        z, logit, self.context_ = self.learner_.encode_table(x, seed=seed)
        return z, logit

    def _embed(self, x: Tensor, min_samples: int = 1) -> Tensor:
        """The learner's embedding (N, D) of inputs from :meth:`_inputs` (new rows of the fitted
        table, for a table learner)."""
        if is_table_model(self.learner_):
            z = self.learner_.encode_rows(x, self.context_)[0]
            return torch.nn.functional.normalize(z, dim=-1) if self.normalize else z
        return embed_inputs(self.learner_, x, normalize=self.normalize, batch_size=self.batch_size,
                            min_samples=min_samples, input_shape=self.input_shape_,
                            progress=self.progress)

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral):
            check_seed(self.random_state, "random_state")
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))


class MetaClusterer(ClusterMixin, _MetaEstimator):
    """k-means++ (or spectral clustering) in the embedding space of a meta-trained model
    (:func:`umeta.adapt.cluster_dataset`).

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (the built-in label-free
        image model that ships with umeta; see `umeta.pretrained`).
        None clusters the inputs themselves.
    n_clusters : int or None, default=None
        None estimates it: the k of ``k_range`` whose k-means has the best silhouette (as
        :func:`umeta.adapt.cluster_dataset` and ``umeta cluster`` without ``--n-clusters``).
    k_range : (int, int), default=(2, 10)
        Candidates (inclusive) when ``n_clusters`` is None.
    normalize : bool, default=False
        L2-normalise the embedding.
    refine : {"none", "soft", "balanced"}, default="none"
        Prototype refinement after k-means (see :func:`umeta.numeric.refine_prototypes`).
    algorithm : {"auto", "kmeans", "spectral"}, default="auto"
        The clustering step on the embedding: k-means++, or spectral clustering on its
        10-nearest-neighbour graph (:func:`umeta.numeric.spectral.spectral_clustering`; for
        curved or stretched clusters; ``refine`` must be "none"). "auto" is spectral with a
        meta-trained model where X has at least 10 samples a cluster (``n_clusters``, or the top
        of ``k_range``) and ``refine`` is "none"; k-means otherwise, and without a learner
        (B2, B6 and B8 in the README: smaller clusters than a neighbourhood lose with it).
        The number of clusters, when estimated, is k-means's best silhouette either way.
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
    progress : bool, default=False
        Show progress bars (feature extraction, fine-tuning) on stderr.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters_, n_features_out)
        In the embedding space of the learner (in ``space_``).
    n_clusters_ : int
    algorithm_ : str
        The clustering step run ("kmeans" or "spectral").
    space_ : {"embedding", "values"}
        Where X was clustered: the model's embedding (X itself without a learner), or, for a
        table model asked for more clusters than its synthetic training tables had
        (``learner_.trained_clusters``, 10 for the built-in one), the table's standardised
        values (each column's z-score against the model's context rows;
        `TableLearner.standard_values`), with k-means: outside its training range the model
        loses to them (README, Tables).
    k_range_ : (int, int) or None
        The candidates searched when ``n_clusters`` is None (``k_range``, its top at most
        ``n_samples - 1``); None when ``n_clusters`` was given.
    inertia_ : float
    n_iter_ : int
        k-means iterations run (0 with ``algorithm="spectral"``).
    confidence_ : ndarray of shape (n_samples,)
        Each sample's margin between its own centre and the nearest other one, relative to the
        larger distance: 1 at its centre, 0 on a boundary (:func:`umeta.adapt.explain`).
    prototype_indices_ : ndarray of shape (n_clusters_,), int64
        The sample nearest each centre (-1 for an empty cluster): ``X[prototype_indices_]``
        are real members that stand for the clusters. Typical and ambiguous members:
        ``umeta.adapt.ranked_members(confidence_, labels_, n_clusters_)``.
    fit_embedding_ : ndarray of shape (n_samples, n_features_out) or None
        With ``algorithm="spectral"``, the clustered embedding of X (``predict`` gives a new
        sample its nearest point's label); None with "kmeans".
    learner_ : Learner or None
        The model whose embedding was clustered (the fine-tuned copy with ``finetune_steps``).
    input_shape_ : (C, H, W) or None
    device_ : torch.device
    n_features_in_ : int
        Values per input sample.

    Examples
    --------
    >>> import numpy as np
    >>> from umeta.estimators import MetaClusterer
    >>> x = np.r_[np.zeros((5, 2)), np.ones((5, 2))] + 0.01 * np.arange(10)[:, None]
    >>> MetaClusterer(n_clusters=2).fit(x).labels_.tolist()  # no learner: k-means++ on x
    [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    >>> model = MetaClusterer(n_clusters=2).fit(x)
    >>> model.prototype_indices_.tolist(), bool(model.confidence_.min() > 0.9)
    ([7, 2], True)

    With a meta-trained model, the same call clusters its embedding of images
    (``learner=load_learner(path)``, a checkpoint path, or ``"builtin"``).
    """

    # finetune_steps and finetune_lr: check_finetune_args
    _limits = {**CLUSTER_DATASET_LIMITS, "algorithm": [OneOf("auto", *ALGORITHMS)]}

    def __init__(self, learner=None, n_clusters: int | None = None, *, k_range=(2, 10),
                 normalize: bool = False, refine: str = "none", finetune_steps: int = 0,
                 finetune_lr: float = 1e-4, n_init: int = 10, max_iter: int = 300,
                 tol: float = 1e-4, input_shape=None, device=None, batch_size: int = 1024,
                 random_state=0, progress: bool = False, algorithm: str = "auto") -> None:
        self.learner = learner
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.normalize = normalize
        self.refine = refine
        self.algorithm = algorithm
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.input_shape = input_shape
        self.device = device
        self.batch_size = batch_size
        self.random_state = random_state
        self.progress = progress

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
        self._check_params()
        with renamed_params({"steps": "finetune_steps", "lr": "finetune_lr"}):
            check_finetune_args(self.finetune_steps, self.finetune_lr)
        data = self._inputs(X, reset=True, min_samples=2)
        seed = self._seed()
        learner = self.learner_
        self.space_ = "embedding"
        if is_table_model(learner):
            if self.finetune_steps:
                raise ParamError("finetune_steps", self.finetune_steps,
                                 "{param} fine-tunes image models; a table model reads each "
                                 "table as it is: set {param} to 0")
            rows, data, learner = data, self._fit_table(data, seed)[0], None
            if self.learner_.clusters_on_values(self.n_clusters):
                self.space_, data = "values", self.learner_.standard_values(rows, self.context_)
        if self.finetune_steps:
            if self.learner_ is None:
                raise ParamError("finetune_steps", self.finetune_steps,
                                 "{param} fine-tunes a meta-trained model: pass a learner (a "
                                 "checkpoint), or set {param} to 0")
            self.learner_ = learner = finetune(self.learner_, data, steps=self.finetune_steps,
                                               lr=self.finetune_lr, seed=seed,
                                               progress=self.progress)
        algorithm = self._algorithm(len(data))
        result = cluster_dataset(learner, data, self.n_clusters, k_range=tuple(self.k_range),
                                 normalize=self.normalize, n_init=self.n_init,
                                 max_iter=self.max_iter, tol=self.tol, refine=self.refine,
                                 seed=seed, batch_size=self.batch_size,
                                 input_shape=None if learner is None else self.input_shape_,
                                 progress=self.progress,
                                 fit_rows=(TABLE_FIT_ROWS if is_table_model(self.learner_)
                                           else None),
                                 algorithm=algorithm)
        self.labels_ = result.labels.cpu().numpy()
        self.cluster_centers_ = result.centers.cpu().numpy()
        self.n_clusters_ = result.n_clusters
        self.k_range_ = None if self.n_clusters is not None else search_range(self.k_range,
                                                                               len(data))
        self.inertia_ = float(result.inertia)
        self.n_iter_ = result.n_iter
        self.confidence_ = assignment_confidence(result.features, result.labels,
                                                 result.centers).cpu().numpy()
        self.prototype_indices_ = prototype_indices(result.features, result.labels,
                                                    result.centers).cpu().numpy()
        self.algorithm_ = algorithm
        self.fit_embedding_ = result.features.cpu().numpy() if algorithm == "spectral" else None
        return self

    def _algorithm(self, n_samples: int) -> str:
        """The clustering step that ``algorithm`` names for ``n_samples`` samples ("auto":
        `umeta.adapt.cluster.auto_algorithm` with ``n_clusters``, or the top of ``k_range``)."""
        if self.algorithm != "auto":
            return self.algorithm
        most = self.n_clusters if self.n_clusters is not None else max(self.k_range)
        return auto_algorithm(n_samples, most, refine=self.refine,
                              learned=self.learner_ is not None and self.space_ == "embedding")

    def predict(self, X) -> np.ndarray:
        """Index of the nearest cluster centre (with ``algorithm="spectral"``: the label of the
        nearest point of ``fit_embedding_``, so that curved clusters keep their shape).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self)
        x = self._inputs(X, reset=False)
        feats = (self.learner_.standard_values(x, self.context_) if self.space_ == "values"
                 else self._embed(x))
        if self.fit_embedding_ is not None:
            return nearest_point_labels(feats, torch.as_tensor(self.fit_embedding_,
                                                               device=feats.device),
                                        torch.as_tensor(self.labels_,
                                                        device=feats.device)).cpu().numpy()
        return nearest_center(feats, torch.as_tensor(self.cluster_centers_,
                                                     device=feats.device)).cpu().numpy()


class MetaEmbedder(TransformerMixin, _MetaEstimator):
    """A meta-learned embedding followed by PCA to ``n_components`` dimensions
    (:func:`umeta.adapt.embed_dataset`).

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (the built-in label-free
        image model that ships with umeta; see `umeta.pretrained`).
        None makes this plain (exact, deterministic) PCA.
    n_components : int, default=2
    normalize : bool, default=False
        L2-normalise the embedding before PCA.
    input_shape, device, batch_size, progress : see :class:`MetaClusterer`

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features_out)
    mean_ : ndarray of shape (n_features_out,)
    explained_variance_ : ndarray of shape (n_components,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    learner_, input_shape_, device_, n_features_in_ : see :class:`MetaClusterer`

    Examples
    --------
    >>> import numpy as np
    >>> from umeta.estimators import MetaEmbedder
    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> MetaEmbedder(n_components=2).fit_transform(x).shape  # no learner: PCA of x
    (20, 2)
    """

    _limits = EMBED_LIMITS

    def __init__(self, learner=None, n_components: int = 2, *, normalize: bool = False,
                 input_shape=None, device=None, batch_size: int = 1024,
                 progress: bool = False) -> None:
        self.learner = learner
        self.n_components = n_components
        self.normalize = normalize
        self.input_shape = input_shape
        self.device = device
        self.batch_size = batch_size
        self.progress = progress

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
        self._check_params()
        data = self._inputs(X, reset=True, min_samples=2)
        learner = self.learner_
        if is_table_model(learner):
            data, learner = self._fit_table(data)[0], None
        with renamed_params({"d": "n_components"}):
            pca = embed_dataset(learner, data, self.n_components, normalize=self.normalize,
                                batch_size=self.batch_size,
                                input_shape=None if learner is None else self.input_shape_,
                                progress=self.progress).pca
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
        feats = self._embed(self._inputs(X, reset=False))
        pca = PCA(*(torch.as_tensor(a, device=feats.device, dtype=feats.dtype) for a in (
            self.mean_, self.components_, self.explained_variance_,
            self.explained_variance_ratio_)))
        return pca.transform(feats).cpu().numpy()


class MetaAnomalyDetector(OutlierMixin, _MetaEstimator):
    """Anomaly detection by distance to normal data in a meta-learned embedding space
    (:func:`umeta.adapt.fit_normal`).

    ``fit`` takes normal samples (or the data itself, when no normal samples are known: see
    ``training_scores_``). ``score_samples`` is minus the distance to the ``n_neighbors``-th
    nearest normal sample (method "knn") or to the nearest normal prototype ("prototype"): the
    lower, the more abnormal. With "knn", scoring the training samples themselves counts each as
    its own nearest neighbour; the threshold is set without that.

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained model, a checkpoint path, or ``"builtin"`` (the built-in label-free
        image model that ships with umeta; see `umeta.pretrained`).
    method : {"knn", "prototype"}, default="knn"
    n_neighbors : int, default=1
    n_prototypes : int, default=1
        Prototypes of method "prototype": the normal mean, or k-means centres.
    contamination : float, default=0.1
        Fraction of the training samples the threshold ``offset_`` flags (in (0, 0.5]); for
        "knn" the training scores are leave-one-out.
    normalize : bool, default=False
    input_shape, device, batch_size, random_state, progress : see :class:`MetaClusterer`

    Attributes
    ----------
    offset_ : float
        ``decision_function = score_samples - offset_``; negative means anomaly.
    training_scores_ : ndarray of shape (n_samples,)
        ``score_samples`` of the training samples, leave-one-out for "knn": with no normal
        samples known, fit on the data itself and flag ``training_scores_ < offset_``.
    reference_ : ndarray of shape (n_reference, n_features_out) or None
        Normal embeddings ("knn") or prototypes ("prototype"); None with a table model.
    context_ : TableContext
        With a table model only: the fitted table's context (module docstring).
    learner_, input_shape_, device_, n_features_in_ : see :class:`MetaClusterer`

    Examples
    --------
    >>> import numpy as np
    >>> from umeta.estimators import MetaAnomalyDetector
    >>> normal = np.random.default_rng(0).normal(size=(50, 3))
    >>> detector = MetaAnomalyDetector(n_neighbors=3).fit(normal)  # no learner: k-NN on x
    >>> detector.predict(np.array([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]])).tolist()
    [1, -1]
    """

    _limits = ANOMALY_LIMITS

    def __init__(self, learner=None, method: str = "knn", n_neighbors: int = 1,
                 n_prototypes: int = 1, contamination: float = 0.1, *, normalize: bool = False,
                 input_shape=None, device=None, batch_size: int = 1024, random_state=0,
                 progress: bool = False) -> None:
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
        self.progress = progress

    def fit(self, X, y=None) -> "MetaAnomalyDetector":
        """Learn what normal data looks like.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Normal samples (or all the data, see ``training_scores_``).
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        data = self._inputs(X, reset=True, min_samples=2)
        if is_table_model(self.learner_):
            logit = self._fit_table(data, self._seed())[1]
            self.training_scores_ = -logit.cpu().numpy().astype(np.float64)
            self.reference_ = None
            self.offset_ = float(np.percentile(self.training_scores_, 100.0 * self.contamination))
            return self
        feats = self._embed(data, min_samples=2)
        profile = fit_normal(feats, self.method, n_neighbors=self.n_neighbors,
                             n_prototypes=self.n_prototypes, seed=self._seed())
        self.training_scores_ = -profile.scores(feats, exclude_self=True).cpu().numpy().astype(
            np.float64)
        self.reference_ = profile.reference.cpu().numpy()
        self.offset_ = float(np.percentile(self.training_scores_, 100.0 * self.contamination))
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
        x = self._inputs(X, reset=False)
        if is_table_model(self.learner_):
            return -self.learner_.encode_rows(x, self.context_)[1].cpu().numpy().astype(np.float64)
        feats = self._embed(x)
        reference = torch.as_tensor(self.reference_, device=feats.device, dtype=feats.dtype)
        profile = NormalProfile(reference, self.method, self.n_neighbors)
        return -profile.scores(feats).cpu().numpy().astype(np.float64)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies, shape (n_samples,)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for anomalies, +1 for normal samples, shape (n_samples,)."""
        return np.where(self.decision_function(X) < 0, -1, 1)
