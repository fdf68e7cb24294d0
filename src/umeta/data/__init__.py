"""Data: `ImageSet` and readers for Omniglot, the built-in glyphs and user files."""

from umeta.data.download import download_file
from umeta.data.imageset import ImageSet
from umeta.data.omniglot import load_omniglot, read_omniglot, with_rotations
from umeta.data.splits import SPLITS, split_class_names

__all__ = ["ImageSet", "SPLITS", "download_file", "load_omniglot", "read_omniglot",
           "split_class_names", "with_rotations"]
