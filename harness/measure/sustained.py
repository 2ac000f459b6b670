"""After a sustained point completes: summarise each of its sustained trials (minute-1 and last-minute medians,
ratio, throttled and since when) from the stored timeline, and keep the summary next to it."""

from __future__ import annotations

import json

from devices.result import TrialResult
from harness.measure.throttling import SustainedSummary, ThrottleThresholds, summarize
from harness.store import Store

DEFAULT_THRESHOLDS = ThrottleThresholds()


def summarize_point(
    store: Store, point_id: int, thresholds: ThrottleThresholds = DEFAULT_THRESHOLDS
) -> list[SustainedSummary]:
    """Summaries of a point's sustained trials (stored, replacing older ones); empty for a point without any."""
    out = []
    trials = store.trials_frame([point_id]).set_index("trial_id")
    for trial_id in store.sustained_trial_ids(point_id):
        run = store.sustained_run(trial_id)
        if run is None:
            continue
        affinity = TrialResult.from_json(json.loads(trials.loc[trial_id, "runner_json"])).affinity  # its cores
        cpus = list(affinity) if affinity else None
        summary = summarize(store.timeline(trial_id), cpus, thresholds)
        store.put_sustained_summary(trial_id, point_id, run, summary.to_row())
        out.append(summary)
    return out
