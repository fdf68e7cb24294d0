"""`MetaSegmenter`: unsupervised image segmentation as a scikit-learn estimator.

The scikit-learn face of :func:`umeta.adapt.segment.segment_image`: k-means++ of an image's
pixels in the dense embedding of a meta-learned segmentation model (``"builtin"``: the one that
ships with umeta, `umeta.pretrained`), or of their colours without a model (the classical
baseline). Parameter limits are declared once, in `umeta.adapt.segment`
(``SEGMENT_LIMITS``), and checked on entry to ``fit``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClusterMixin
from sklearn.utils.validation import check_is_fitted

from umeta.adapt.segment import (SEGMENT_LIMITS, assign_pixels, full_size, image_features,
                                  segment_image)
from umeta.estimators import _MetaEstimator


class MetaSegmenter(ClusterMixin, _MetaEstimator):
    """Segment an image without labels: k-means++ of its pixels in a meta-learned dense space.

    Parameters
    ----------
    learner : Learner, str, os.PathLike or None, default=None
        A meta-trained dense (segmentation) model, its checkpoint path, or ``"builtin"`` (the
        built-in segmentation model, meta-trained on procedural mosaics: `umeta.pretrained`).
        None clusters the pixels' colours (and positions, with ``position_weight``).
    n_segments : int or None, default=None
        Segments, >= 2; None estimates it: the k of ``k_range`` whose k-means has the best
        silhouette on a sample of the pixels.
    k_range : (int, int), default=(2, 8)
        Candidates (inclusive) when ``n_segments`` is None.
    position_weight : float, default=0.0
        Append each pixel's (row, column) / longer side, times this weight, to its features.
    max_side : int, default=256
        Longest side an image is embedded at; larger images are shrunk (area averaging) and
        their labels enlarged back (nearest).
    n_init : int, default=4
        k-means restarts.
    max_iter : int, default=100
    snap_edges : bool, default=True
        With a learner, move the segment edges onto the image's colour edges
        (`umeta.adapt.segment.snap_to_colour_edges`).
    device : str or None, default=None
        Where to compute; None uses the learner's device (CPU without a learner).
    random_state : int, RandomState or None, default=0

    Attributes
    ----------
    labels_ : ndarray of shape (H, W), int64
        Segment of every pixel of the fitted image, in ``0 .. n_segments_ - 1``.
    cluster_centers_ : ndarray of shape (n_segments_, n_features_out)
        Segment centres in the pixel feature space.
    n_segments_ : int
    work_shape_ : (int, int)
        The (H, W) the image was embedded at.
    k_range_ : (int, int) or None
        The candidates searched when ``n_segments`` is None (``k_range``, its top at most the
        pixels less one); None when ``n_segments`` was given.
    learner_ : Learner or None
    device_ : torch.device

    Examples
    --------
    >>> import numpy as np
    >>> from umeta.segmenter import MetaSegmenter
    >>> image = np.zeros((6, 8, 3), np.uint8); image[:, 4:] = (200, 30, 30)  # two halves
    >>> MetaSegmenter(n_segments=2).fit(image).labels_[0].tolist()  # no learner: colours
    [1, 1, 1, 1, 0, 0, 0, 0]

    With the built-in model, ``MetaSegmenter("builtin", n_segments=4).fit_predict(image)``
    segments by the meta-learned embedding (textures, not only colours).
    """

    _limits = SEGMENT_LIMITS

    def __init__(self, learner=None, n_segments: int | None = None, *, k_range=(2, 8),
                 position_weight: float = 0.0, max_side: int = 256, n_init: int = 4,
                 max_iter: int = 100, snap_edges: bool = True, device=None,
                 random_state=0) -> None:
        self.learner = learner
        self.n_segments = n_segments
        self.k_range = k_range
        self.position_weight = position_weight
        self.max_side = max_side
        self.n_init = n_init
        self.max_iter = max_iter
        self.snap_edges = snap_edges
        self.device = device
        self.random_state = random_state

    def fit(self, X, y=None) -> "MetaSegmenter":
        """Segment the image X.

        Parameters
        ----------
        X : array-like of shape (H, W) or (H, W, C), C in {1, 3, 4}
            uint8, or floats in [0, 1]; an alpha channel is ignored.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        self.learner_, self.device_ = self._resolve_learner("segmentation")
        result = segment_image(self.learner_, X, self.n_segments, k_range=tuple(self.k_range),
                               position_weight=self.position_weight, max_side=self.max_side,
                               n_init=self.n_init, max_iter=self.max_iter, seed=self._seed(),
                               snap_edges=self.snap_edges, device=self.device_)
        self.labels_ = result.labels.cpu().numpy()
        self.cluster_centers_ = result.centers.cpu().numpy()
        self.n_segments_ = result.n_segments
        self.work_shape_ = result.work_shape
        self.k_range_ = result.k_range
        return self

    def predict(self, X) -> np.ndarray:
        """Segment another image by the fitted segment centres (nearest centre per pixel, then
        the edges snapped as in ``fit``).

        Parameters
        ----------
        X : array-like of shape (H, W) or (H, W, C)

        Returns
        -------
        ndarray of shape (H, W), int64
        """
        check_is_fitted(self)
        feats, full, work = image_features(self.learner_, X, position_weight=self.position_weight,
                                           max_side=self.max_side, device=self.device_)
        centers = torch.as_tensor(self.cluster_centers_, device=feats.device, dtype=feats.dtype)
        labels = assign_pixels(self.learner_, X, feats, centers, work,
                               snap_edges=self.snap_edges, max_side=self.max_side)
        return full_size(labels, full).cpu().numpy()


__all__ = ["MetaSegmenter"]
