"""Re-ID losses registered in LOSS_REGISTRY."""
from .cross_entropy import CrossEntropyLoss
from .triplet import TripletLoss, euclidean_dist

__all__ = ["CrossEntropyLoss", "TripletLoss", "euclidean_dist"]
