"""Tasks: `Episode`, the labelled episode sampler and label-free task builders."""

from umeta.tasks.episode import Episode
from umeta.tasks.sampler import EpisodeSampler

__all__ = ["Episode", "EpisodeSampler"]
