"""[tracking] settings; light to import (the config loader needs them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_range


@dataclass
class TrackingSettings:
    """[tracking]: how poses get ids, how their keypoints are steadied, and how counts are debounced.

    `min_similarity`: how alike (box IoU and keypoint OKS, 0-1) a pose must be to a track's prediction
    to continue it. `low_score`: weaker poses than the loop's `min_pose_score`, down to this, may
    continue a track but never start one. `min_hits`: consecutive frames before a new track gets an id
    and is published. `max_age`: seconds a lost person is remembered. `smooth`: One-Euro keypoint
    smoothing per track. `count_hold`: seconds a new people count must hold before it is published
    (a rise from nobody is published at once).
    """

    enabled: bool = True
    max_age: float = 1.0
    min_similarity: float = 0.1
    low_score: float = 0.1
    min_hits: int = 3
    smooth: bool = True
    count_hold: float = 1.0

    def __post_init__(self):
        check_range("tracking.max_age", self.max_age, 0, lo_open=True)
        check_range("tracking.min_similarity", self.min_similarity, 0, 1, lo_open=True)
        check_range("tracking.low_score", self.low_score, 0, 1)
        check_range("tracking.min_hits", self.min_hits, 1, 100)
        check_range("tracking.count_hold", self.count_hold, 0, 3600)
