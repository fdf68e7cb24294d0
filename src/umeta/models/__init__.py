"""Backbones behind a registry."""

from umeta.models.backbones import BACKBONES, MLP, Conv4, build_backbone
from umeta.models.dense import DilatedNet
from umeta.models.resnet12 import ResNet12
from umeta.models.table_encoder import TableEncoder

__all__ = ["BACKBONES", "Conv4", "DilatedNet", "MLP", "ResNet12", "TableEncoder",
           "build_backbone"]
