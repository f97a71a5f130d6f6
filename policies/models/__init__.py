"""The fair-use rules: limit rules, restrictions, fee schedules, overage charges,
top-ups, recommendations and policy versions, one module per area."""

from policies.models.alerts import AlertThreshold
from policies.models.anomalies import AnomalyAlert
from policies.models.fees import FeeSchedule, FeeScheduleNotice, FeeTier, OverageCharge
from policies.models.guidance import LimitRecommendation, PolicyAcknowledgement, PolicyVersion
from policies.models.limit_requests import LimitRequest
from policies.models.rules import (
    DEFAULT_THRESHOLDS,
    Action,
    CarryOver,
    CohortDefault,
    LimitRule,
    Restriction,
    RuleTerms,
    Window,
    default_thresholds,
)
from policies.models.topups import AutoTopUp, TopUp, TopUpOffer, TopUpPack
from policies.models.whatif import WhatIfRun

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Action",
    "AlertThreshold",
    "AnomalyAlert",
    "AutoTopUp",
    "CarryOver",
    "CohortDefault",
    "FeeSchedule",
    "FeeScheduleNotice",
    "FeeTier",
    "LimitRecommendation",
    "LimitRequest",
    "LimitRule",
    "OverageCharge",
    "PolicyAcknowledgement",
    "PolicyVersion",
    "Restriction",
    "RuleTerms",
    "TopUp",
    "TopUpOffer",
    "TopUpPack",
    "WhatIfRun",
    "Window",
    "default_thresholds",
]
