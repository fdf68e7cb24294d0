"""Tasks: `Episode`, the labelled episode sampler, augmentations and label-free task builders."""

from umeta.tasks.augment import Augment
from umeta.tasks.builders import TASK_BUILDERS, build_task_source
from umeta.tasks.cactus import CACTUs
from umeta.tasks.clustering import ClusteringTasks, sample_clustering_tasks
from umeta.tasks.episode import Episode
from umeta.tasks.sampler import EpisodeSampler
from umeta.tasks.tables import TableBatch, TableTasks
from umeta.tasks.umtra import UMTRA, ViewBatch, ViewSampler

__all__ = ["Augment", "CACTUs", "ClusteringTasks", "Episode", "EpisodeSampler", "TASK_BUILDERS", "TableBatch",
           "TableTasks", "UMTRA",
           "ViewBatch", "ViewSampler", "build_task_source", "sample_clustering_tasks"]
