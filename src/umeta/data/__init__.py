"""Data: `ImageSet` and readers for Omniglot, the built-in glyphs and user files."""

from umeta.data.imageset import ImageSet

__all__ = ["ImageSet"]
