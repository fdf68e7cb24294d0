"""Backbones behind a registry."""

from umeta.models.backbones import BACKBONES, MLP, Conv4, build_backbone
from umeta.models.dense import DilatedNet
from umeta.models.resnet12 import ResNet12

__all__ = ["BACKBONES", "Conv4", "DilatedNet", "MLP", "ResNet12", "build_backbone"]
