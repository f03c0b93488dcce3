"""Robust aggregation rules as strategies: coordinate-wise median and trimmed mean.

Both replace FedAvg's weighted mean by an unweighted per-coordinate statistic of the K uploaded
adapters (Yin et al. 2018, arXiv:1803.01498), so a minority of arbitrary uploads cannot move a
coordinate beyond the honest clients' range. They run after the round layer's screening and
norm bound like every other rule. Example counts do not weight them (a large reported count
buys no influence).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fedpia.aggregation import coordinate_median, trimmed_mean
from fedpia.strategies.base import Strategy
from fedpia.strategies.registry import register_strategy


@register_strategy("fedmedian")
@dataclass
class FedMedian(Strategy):
    """Coordinate-wise median of the uploaded adapters (mean of the two middle values, even K)."""

    def aggregate(self, server, updates, ctx):
        if not server.adapter:
            return replace(server, round=ctx.round), {}
        med = coordinate_median([u.state for u in updates])
        return replace(server, adapter=med, round=ctx.round), {}


@register_strategy("fedtrimmedavg")
@dataclass
class FedTrimmedAvg(Strategy):
    """Coordinate-wise trimmed mean: drop the ⌊βK⌋ smallest and largest values, average the
    rest (β = ``beta`` in [0, 0.5); β = 0 is the unweighted mean)."""

    beta: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise ValueError(f"fedtrimmedavg.beta must be in [0, 0.5), got {self.beta}")

    def aggregate(self, server, updates, ctx):
        if not server.adapter:
            return replace(server, round=ctx.round), {}
        avg = trimmed_mean([u.state for u in updates], beta=self.beta)
        return replace(server, adapter=avg, round=ctx.round), {}
