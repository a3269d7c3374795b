"""Gallery-removal rules: which gallery items each query is ranked against.

A rule is a function registered in :data:`GALLERY_RULE_REGISTRY` taking ``(q, g)``, two
:class:`RankMeta` (``q`` one chunk of C queries, ``g`` the whole gallery of G items, 1-D tensors on
one device) and returning a C×G bool ``keep`` mask. Rules combine with ``+`` in a protocol's rule
name (an item is kept only if every rule keeps it); adding a protocol's rule is one registered
function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from agreid.data.records import AERIAL, GROUND, view_index
from agreid.registries import GALLERY_RULE_REGISTRY

Rule = Callable[["RankMeta", "RankMeta"], torch.Tensor]


@dataclass
class RankMeta:
    """Labels of queries or gallery items: pids, camids and, when the protocol has them, views and times."""

    pids: torch.Tensor
    camids: torch.Tensor
    views: Optional[torch.Tensor] = None
    times: Optional[torch.Tensor] = None

    def __getitem__(self, s: slice) -> "RankMeta":
        return RankMeta(self.pids[s], self.camids[s], None if self.views is None else self.views[s],
                        None if self.times is None else self.times[s])

    def need(self, field: str, rule: str) -> torch.Tensor:
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"Gallery rule '{rule}' needs {field}, which were not given")
        return value


def _same_pid(q: RankMeta, g: RankMeta) -> torch.Tensor:
    return q.pids[:, None] == g.pids[None, :]


@GALLERY_RULE_REGISTRY.register("market")
def market_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """Remove gallery items with the query's pid AND the query's camera (Market-1501 convention)."""
    return ~(_same_pid(q, g) & (q.camids[:, None] == g.camids[None, :]))


@GALLERY_RULE_REGISTRY.register("market_view")
def market_view_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """The market rule with the view in place of the camera: remove items with the query's pid AND view.

    VDT's CARGO A↔G: only cross-view matches count as positives, while same-view items of other
    identities stay as distractors; the records keep their real camera ids (SIE needs them).
    """
    return ~(_same_pid(q, g) & (q.need("views", "market_view")[:, None] == g.need("views", "market_view")[None, :]))


@GALLERY_RULE_REGISTRY.register("none")
def keep_all_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """Keep the whole gallery for every query (RegDB: query and gallery are disjoint modalities)."""
    return torch.ones(q.pids.shape[0], g.pids.shape[0], dtype=torch.bool, device=g.pids.device)


@GALLERY_RULE_REGISTRY.register("sysu")
def sysu_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """SYSU-MM01: cameras 2 and 3 share a room, so a camera-3 query skips every camera-2 item, any pid."""
    return ~((q.camids[:, None] == 3) & (g.camids[None, :] == 2))


def _view_rule(view: str, name: str) -> Rule:
    code = view_index(view)

    def rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
        return ~(_same_pid(q, g) & (g.need("views", name)[None, :] == code))

    rule.__doc__ = f"MSSL: remove same-pid gallery items seen from the {view} view."
    return rule


GALLERY_RULE_REGISTRY.register(_view_rule(AERIAL, "mssl_s2g"), name="mssl_s2g")
GALLERY_RULE_REGISTRY.register(_view_rule(GROUND, "mssl_g2s"), name="mssl_g2s")


@GALLERY_RULE_REGISTRY.register("cross_view")
def cross_view_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """CP2108 view filter 'cross': drop every gallery item of the query's view, whatever its pid."""
    return q.need("views", "cross_view")[:, None] != g.need("views", "cross_view")[None, :]


@GALLERY_RULE_REGISTRY.register("same_view")
def same_view_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """CP2108 view filter 'same': drop every gallery item of another view."""
    return q.need("views", "same_view")[:, None] == g.need("views", "same_view")[None, :]


@GALLERY_RULE_REGISTRY.register("cross_time")
def cross_time_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """CP2108 time filter 'cross': drop gallery items taken at the query's time of day."""
    return q.need("times", "cross_time")[:, None] != g.need("times", "cross_time")[None, :]


@GALLERY_RULE_REGISTRY.register("same_time")
def same_time_rule(q: RankMeta, g: RankMeta) -> torch.Tensor:
    """CP2108 time filter 'same': drop gallery items taken at another time of day."""
    return q.need("times", "same_time")[:, None] == g.need("times", "same_time")[None, :]


def resolve_rule(rule: Union[str, Rule]) -> Rule:
    """A rule function from a registered name, a ``+``-joined combination of names, or a function."""
    if callable(rule):
        return rule
    parts = [GALLERY_RULE_REGISTRY.get(name.strip()) for name in rule.split("+")]
    if len(parts) == 1:
        return parts[0]

    def combined(q: RankMeta, g: RankMeta) -> torch.Tensor:
        keep = parts[0](q, g)
        for part in parts[1:]:
            keep &= part(q, g)
        return keep

    return combined
