"""CLIP's text encoder run on prompt embeddings, and the identity-specific prompt learner of CLIP-ReID.

- :class:`ClipTextEncoder` adopts open_clip's text transformer, ``positional_embedding``, ``ln_final`` and
  ``text_projection`` (keys as in OpenAI's files) and encodes B×L×W prompt *embeddings*: add the position
  embedding, run the causal transformer, ``ln_final``, take the EOT row (argmax of the token ids) and project.
- :class:`PromptTemplate` holds the token embeddings of a template such as "A photo of a X X X X person."
  around its run of ``X`` slots (where the learnable tokens go); :class:`PromptLearner` adds one learnable
  context per identity (CLIP-ReID's ``cls_ctx``, K×n×W, init N(0, 0.02)), substituted for the slots.
- :func:`tokenize` is open_clip's tokenizer (its bundled BPE vocabulary: nothing is downloaded).

The token embedding itself is only needed when a template is built (CLIP-ReID drops it afterwards; its
checkpoints hold ``token_prefix`` / ``token_suffix`` instead).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import torch
from torch import nn

PROMPT_SLOT = "X"


@lru_cache(maxsize=None)
def _bpe_tokenizer():
    """open_clip's BPE tokenizer, built once per process (reading its vocabulary takes ~0.08 s)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(text: str, context_length: int = 77) -> torch.Tensor:
    """1×``context_length`` token ids of ``text`` (SOT … EOT, zero padded, on the CPU), as OpenAI's
    ``clip.tokenize``."""
    tok = _bpe_tokenizer()
    ids = [tok.sot_token_id] + tok.encode(text) + [tok.eot_token_id]
    if len(ids) > context_length:
        raise ValueError(f"Prompt {text!r} has {len(ids)} tokens, more than the context length {context_length}")
    out = torch.zeros(1, context_length, dtype=torch.long, device="cpu")
    out[0, :len(ids)] = torch.tensor(ids, dtype=torch.long, device="cpu")
    return out


def prompt_slot_span(tokens: torch.Tensor, template: str) -> Tuple[int, int]:
    """(start, count) of the single run of ``X`` tokens in the 1×L ``tokens`` of ``template``."""
    x_id = _bpe_tokenizer().encoder[PROMPT_SLOT.lower() + "</w>"]
    where = [i for i, t in enumerate(tokens[0].tolist()) if t == x_id]
    if not where or where != list(range(where[0], where[0] + len(where))):
        raise ValueError(f"Prompt template {template!r} needs one run of '{PROMPT_SLOT}' slots "
                         f"(the learnable tokens), e.g. 'A photo of a X X X X person.'")
    return where[0], len(where)


class PromptTemplate(nn.Module):
    """Fixed token embeddings of a template: ``token_prefix`` (SOT and the words before the slots),
    ``token_suffix`` (the words after them, EOT and padding) and the token ids (``tokens``, for the EOT index).

    ``persistent`` decides whether the prefix / suffix are saved in the state dict (CLIP-ReID saves them).
    """

    def __init__(self, template: str, token_embedding: nn.Embedding, context_length: int = 77,
                 persistent: bool = True) -> None:
        super().__init__()
        self.template = template
        tokens = tokenize(template, context_length)
        start, self.n_ctx = prompt_slot_span(tokens, template)
        with torch.no_grad():
            emb = token_embedding(tokens.to(token_embedding.weight.device)).float()
        self.register_buffer("token_prefix", emb[:, :start].clone(), persistent=persistent)
        self.register_buffer("token_suffix", emb[:, start + self.n_ctx:].clone(), persistent=persistent)
        self.register_buffer("tokens", tokens, persistent=False)
        self.width = emb.shape[-1]

    def compose(self, ctx: torch.Tensor) -> torch.Tensor:
        """B×L×W prompt embeddings with the B×n×W ``ctx`` in place of the slots."""
        b = ctx.shape[0]
        return torch.cat([self.token_prefix.expand(b, -1, -1).to(ctx.dtype), ctx,
                          self.token_suffix.expand(b, -1, -1).to(ctx.dtype)], dim=1)


class PromptLearner(PromptTemplate):
    """CLIP-ReID's prompt learner: template embeddings plus ``cls_ctx`` (num_classes × n × W, N(0, 0.02)), the
    learnable words of each identity."""

    def __init__(self, num_classes: int, template: str, token_embedding: nn.Embedding,
                 context_length: int = 77) -> None:
        super().__init__(template, token_embedding, context_length, persistent=True)
        if num_classes <= 0:
            raise ValueError(f"PromptLearner needs the number of identities (> 0), got {num_classes}")
        self.num_classes = num_classes
        self.cls_ctx = nn.Parameter(torch.empty(num_classes, self.n_ctx, self.width))
        self.reset_context()

    def reset_context(self) -> None:
        """Re-draw every identity's context N(0, 0.02) (the reference initialisation)."""
        nn.init.normal_(self.cls_ctx, std=0.02)

    def forward(self, labels: torch.Tensor, template: Optional[PromptTemplate] = None) -> torch.Tensor:
        """B×L×W prompts of identities ``labels``, in this learner's template or in ``template`` (a template with
        the same number of slots, e.g. MSP's per-view ones)."""
        template = self if template is None else template
        if template.n_ctx != self.n_ctx:
            raise ValueError(f"Template {template.template!r} has {template.n_ctx} slots, the learner "
                             f"{self.n_ctx}")
        return template.compose(self.cls_ctx[labels])


class ClipTextEncoder(nn.Module):
    """CLIP text transformer over prompt embeddings → B×d features (EOT row @ ``text_projection``)."""

    def __init__(self, clip_model: nn.Module) -> None:
        """Adopt the text tower of open_clip ``clip_model`` (``CLIP``: transformer, positional_embedding,
        ln_final, text_projection, attn_mask)."""
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask.clone(), persistent=False)
        self.out_dim = self.text_projection.shape[1]

    def forward(self, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Features of B×L×W ``prompts``; ``tokens`` (B×L or 1×L ids) locate each prompt's EOT (argmax)."""
        x = prompts + self.positional_embedding.to(prompts.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        eot = tokens.argmax(dim=-1).expand(x.shape[0])
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


__all__ = ["ClipTextEncoder", "PromptLearner", "PromptTemplate", "tokenize", "prompt_slot_span"]
