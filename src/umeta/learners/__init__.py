"""Meta-learners behind one `Learner` interface and a registry."""

from umeta.learners.base import LEARNERS, Learner, MetaLoss
from umeta.learners.maml import MAML
from umeta.learners.protonet import ProtoNet
from umeta.learners.psco import PsCo
from umeta.learners.segment import PixelProto
from umeta.learners.table import TableLearner

__all__ = ["LEARNERS", "Learner", "MAML", "MetaLoss", "PixelProto", "ProtoNet", "PsCo",
           "TableLearner"]
