"""Data: `ImageSet` and readers for Omniglot, the built-in glyphs and user files."""

from umeta.data.download import download_file
from umeta.data.glyphs import builtin_glyph_splits, make_glyphs
from umeta.data.imageset import ImageSet
from umeta.data.omniglot import load_omniglot, read_omniglot, with_rotations
from umeta.data.splits import SPLITS, split_class_names
from umeta.data.user import UserData, load_user_data

__all__ = ["ImageSet", "SPLITS", "UserData", "builtin_glyph_splits", "download_file",
           "load_omniglot", "load_user_data", "make_glyphs", "read_omniglot", "split_class_names",
           "with_rotations"]
