"""[tracking] settings; light to import (the config loader needs them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_range


@dataclass
class TrackingSettings:
    """[tracking]: whether poses get ids, how alike two poses must be to be the same person, and for how long a lost one is remembered."""

    enabled: bool = True
    max_age: float = 1.0
    min_similarity: float = 0.2

    def __post_init__(self):
        check_range("tracking.max_age", self.max_age, 0, lo_open=True)
        check_range("tracking.min_similarity", self.min_similarity, 0, 1, lo_open=True)
