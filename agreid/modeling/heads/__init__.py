"""Re-ID heads registered in HEAD_REGISTRY, and the pooling they use."""
from .bnneck import BNNeckHead, build_bnneck_head
from .embedding import EmbeddingHead
from .pooling import POOLINGS, AvgPool, GeMPool, MaxPool, TokenPool, build_pooling

__all__ = ["BNNeckHead", "build_bnneck_head", "EmbeddingHead", "POOLINGS", "AvgPool", "GeMPool", "MaxPool", "TokenPool",
           "build_pooling"]
