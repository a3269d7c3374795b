"""Attention building blocks shared by methods (SeCap's prompt re-calibration and two-way decoder)."""
from .non_local import NonLocalBlock
from .projected_attention import ProjectedAttention
from .prompt_recalibration import PromptRecalibration
from .two_way_transformer import OutAttentionBlock, TwoWayAttentionBlock, TwoWayTransformer

__all__ = ["NonLocalBlock", "ProjectedAttention", "PromptRecalibration", "OutAttentionBlock", "TwoWayAttentionBlock",
           "TwoWayTransformer"]
