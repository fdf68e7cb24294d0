"""Backbones behind a registry."""

from umeta.models.backbones import BACKBONES, MLP, Conv4, build_backbone

__all__ = ["BACKBONES", "Conv4", "MLP", "build_backbone"]
