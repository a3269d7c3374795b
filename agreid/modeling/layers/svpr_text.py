"""SVPR-ReID's text side (``HybirdTextEncoder``, ``ViewPromptBuilder``): the caption's text prompt and the view
prompt, both encoded by the frozen CLIP text tower of :class:`~agreid.modeling.backbones.svpr_clip.SVPRClip`.

- Text token: the caption's token embeddings with the learnable ``text_prompt`` (1×n×W) ADDED at the n "X"
  positions (5 … 4+n, after "A photo of a"); every position is encoded; text token = EOT row + mean of the n
  prompt rows (B×d).
- View token: the template "A photo of a X X X X person from X view." with the n prompt X's REPLACED by the
  learnable ``view_prompt`` and the last X replaced by the token embedding of "ground" or "aerial" picked by the
  view label; the n prompt rows attend to the view-word row (8 heads) plus a residual, are flattened (n·d) and
  mapped to d by ``view_fusion``.

View words: row ``l`` of the embedded "ground aerial" tokens after SOT, so labels 0 / 1 give the words and label
2 (AG-ReID.v2's UAV) gives the end-of-text embedding (reference quirk); ``word_index`` remaps labels first
(e.g. ``[0, 1, 1]`` gives UAV "aerial").
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from ..backbones.clip_text import tokenize
from .init import init_linear_trunc_normal
from .svpr_blocks import TokenCrossAttention

PROMPT_START = 5  # the "X" run starts after SOT, "a", "photo", "of", "a" (hard-coded by the reference)
VIEW_WORDS = "ground aerial"


class ViewPromptBuilder(nn.Module):
    """B×L×W embeddings of the view template for view labels, with the learnable prompts and the view word.

    Buffers (saved, as in the reference): ``token_prefix_suffix`` (the embedded template) and ``token_view`` (the
    embedded "ground aerial"). ``token_embedding`` is CLIP's (shared, so its key appears twice in the state dict).
    """

    def __init__(self, template: str, token_embedding: nn.Embedding, context_length: int, num_prompts: int,
                 word_index: Sequence[int] = ()) -> None:
        super().__init__()
        self.token_embedding = token_embedding
        tokens = tokenize(template, context_length)
        x_id = tokenize("X", context_length)[0, 1].item()
        x_pos = (tokens[0] == x_id).nonzero().flatten()
        if len(x_pos) != num_prompts + 1:
            raise ValueError(f"View template {template!r} needs {num_prompts} prompt X's and one view X")
        words = tokenize(VIEW_WORDS, context_length)
        with torch.no_grad():
            device = token_embedding.weight.device
            self.register_buffer("token_prefix_suffix", token_embedding(tokens.to(device)).float().clone())
            self.register_buffer("token_view", token_embedding(words.to(device)).float().clone())
        self.register_buffer("prompt_positions", x_pos[:-1].clone(), persistent=False)
        self.word_position = int(x_pos[-1])
        self.num_prompts = num_prompts
        if any(i < 0 or i >= context_length - 1 for i in word_index):
            raise ValueError(f"View word rows {list(word_index)} must lie in 0..{context_length - 2}")
        self.register_buffer("word_index", torch.tensor(list(word_index), dtype=torch.long), persistent=False)

    def view_words(self, labels: torch.Tensor) -> torch.Tensor:
        """B×W embeddings of the view word of each label (see the module docstring)."""
        rows = self.word_index[labels] if self.word_index.numel() else labels
        return self.token_view[0, 1:][rows]

    def forward(self, labels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        b = labels.shape[0]
        x = self.token_prefix_suffix.to(prompts.dtype).expand(b, -1, -1).clone()
        x[:, self.prompt_positions] = prompts.expand(b, -1, -1)
        x[:, self.word_position] = self.view_words(labels).to(x.dtype)
        return x


class HybridTextEncoder(nn.Module):
    """The text and view tokens (B×d each) of SVPR-ReID (see the module docstring); reference names kept."""

    def __init__(self, token_embedding: nn.Embedding, embed_dim: int, view_template: str, context_length: int = 100,
                 num_text_prompts: int = 4, num_view_prompts: int = 4, num_heads: int = 8,
                 word_index: Sequence[int] = ()) -> None:
        super().__init__()
        if num_text_prompts < 1 or num_view_prompts < 1:
            raise ValueError("SVPR needs at least one text prompt and one view prompt")
        width = token_embedding.weight.shape[1]
        scale = width ** -0.5
        self.num_text_prompts, self.num_view_prompts = num_text_prompts, num_view_prompts
        self.text_prompt = nn.Parameter(scale * torch.randn(1, num_text_prompts, width))
        self.view_prompt = nn.Parameter(scale * torch.randn(1, num_view_prompts, width))
        self.view_promptlearner = ViewPromptBuilder(view_template, token_embedding, context_length,
                                                    num_view_prompts, word_index)
        self.CA_text2prompt = TokenCrossAttention(embed_dim, num_heads=num_heads)
        self.view_fusion = nn.Linear(embed_dim * num_view_prompts, embed_dim)
        self.CA_text2prompt.apply(init_linear_trunc_normal)
        self.view_fusion.apply(init_linear_trunc_normal)

    def text_token(self, clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        """EOT row + mean of the prompt rows of the encoded caption ``tokens`` (B×L ids)."""
        n, start = self.num_text_prompts, PROMPT_START
        emb = clip.token_embedding(tokens)
        prompt = torch.zeros_like(emb)
        prompt[:, start:start + n] = self.text_prompt.to(emb.dtype)
        feats = clip.encode_embeddings(emb + prompt)
        eot = feats[torch.arange(feats.shape[0], device=feats.device), tokens.argmax(dim=-1)]
        return eot + feats[:, start:start + n].mean(dim=1)

    def view_token(self, clip: nn.Module, labels: torch.Tensor) -> torch.Tensor:
        """The fused view-prompt feature of each view label."""
        builder = self.view_promptlearner
        feats = clip.encode_embeddings(builder(labels, self.view_prompt))
        prompts = feats[:, builder.prompt_positions]
        word = feats[:, builder.word_position:builder.word_position + 1]
        fused = self.CA_text2prompt(prompts, word, word) + prompts
        return self.view_fusion(fused.flatten(1))

    def forward(self, clip: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.text_token(clip, tokens), self.view_token(clip, labels)


__all__ = ["HybridTextEncoder", "ViewPromptBuilder", "PROMPT_START", "VIEW_WORDS"]
