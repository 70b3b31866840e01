"""Production monitoring: reference profiles, drift statistics, alert hooks, drift reports.

Typical use::

    reference = build_profile(X_train, predictions_frame)      # at registration
    reference.save("reference_profile.json")                    # stored with the model version

    result = monitor_batch(batch, ReferenceProfile.load(path), model="churn", version="3",
                           batch_name="2026-11-25", thresholds=spec_monitoring_dict)
    result.write_html("drift_report.html")
    outcomes = fire_alerts(result, hooks_from_dict({"webhook": url}))
    result.raise_for_alert()                                    # MonitorAlert, exit code 5

This package imports numpy but neither pandas nor scipy at import time, and never MLflow.
"""

from toolkit.monitor.alerts import (
    AlertHook,
    CommandHook,
    HookOutcome,
    WebhookHook,
    alert_hooks,
    deliver,
    hooks_from_dict,
)
from toolkit.monitor.bins import Histogram, histogram
from toolkit.monitor.core import MonitorResult, fire_alerts, monitor_batch
from toolkit.monitor.drift import (
    Breach,
    FeatureDrift,
    MonitorThresholds,
    chi_square,
    compare,
    ks_from_sketch,
    psi,
    total_variation,
)
from toolkit.monitor.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    load_profile,
)

__all__ = [
    "AlertHook",
    "Breach",
    "CategoricalProfile",
    "CommandHook",
    "FeatureDrift",
    "Histogram",
    "HookOutcome",
    "MonitorResult",
    "MonitorThresholds",
    "NumericProfile",
    "ReferenceProfile",
    "WebhookHook",
    "alert_hooks",
    "build_profile",
    "chi_square",
    "compare",
    "deliver",
    "fire_alerts",
    "histogram",
    "hooks_from_dict",
    "ks_from_sketch",
    "load_profile",
    "monitor_batch",
    "psi",
    "total_variation",
]
