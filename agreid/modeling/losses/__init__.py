"""Re-ID losses registered in LOSS_REGISTRY."""
from .center import CenterLoss
from .cross_entropy import CrossEntropyLoss
from .fastreid_cross_entropy import FastReIDCrossEntropyLoss
from .online_label_smoothing import OnlineLabelSmoothing
from .orthogonality import OrthogonalityLoss
from .supcon import SupConLoss
from .triplet import TripletLoss, euclidean_dist
from .weighted_triplet import WeightedRegularizedTriplet

__all__ = ["CrossEntropyLoss", "FastReIDCrossEntropyLoss", "OrthogonalityLoss", "TripletLoss", "euclidean_dist",
           "CenterLoss", "WeightedRegularizedTriplet", "OnlineLabelSmoothing", "SupConLoss"]
