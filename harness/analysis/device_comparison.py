"""Devices side by side: the same models (same runtime, precision and threads) on several devices. Per device,
each model's latency relative to the group's smallest model against its MACs relative to that model: where FLOPs
predicted latency, every point would sit on the diagonal, on every device; how far a device departs from it, and
whether the devices order the models alike, is what a FLOP count cannot say."""

from __future__ import annotations

import pandas as pd
from scipy.stats import spearmanr

from harness.analysis.results import Results

GROUP = ("runtime", "precision", "threads")
DEVICE_COLUMNS = (
    *GROUP, "device", "runtime_version", "model_label", "macs", "median_ms", "mac_ratio", "latency_ratio",
    "vs_first_device",
)  # fmt: skip
HOW_TO_DEVICES = (
    "one device per runtime, precision and thread count: measure the same models on another device "
    '(\'flopgap sweep SPEC.toml --devices devices.toml\' with devices = ["local", "rpi5"])'
)


def device_comparison(results: Results) -> pd.DataFrame:
    """One row per (group, device, model) for models measured on every device of their group (at least two)."""
    points = results.points[results.points["macs"].notna()]
    frames = []
    for key, group in points.groupby(list(GROUP), sort=True):
        devices = sorted(group["device"].unique())
        if len(devices) < 2:
            continue
        common = set.intersection(*(set(group[group["device"] == d]["model_label"]) for d in devices))
        sel = group[group["model_label"].isin(common)].copy()
        if len(common) < 2:
            continue
        ref_model = sel.sort_values(["macs", "model_label"]).iloc[0]["model_label"]
        ref = sel[sel["model_label"] == ref_model].set_index("device")
        first = sel[sel["device"] == devices[0]].set_index("model_label")["median_ms"]
        sel["mac_ratio"] = sel["macs"].astype("float64") / float(ref["macs"].iloc[0])
        sel["latency_ratio"] = sel["median_ms"] / sel["device"].map(ref["median_ms"])
        sel["vs_first_device"] = sel["median_ms"] / sel["model_label"].map(first)
        frames.append(sel[list(DEVICE_COLUMNS)])
        del key
    if not frames:
        return pd.DataFrame(columns=list(DEVICE_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    out["macs"] = out["macs"].astype("float64")
    return out.sort_values([*GROUP, "device", "macs", "model_label"]).reset_index(drop=True)


def rank_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per group and device: Spearman ρ of its latency order with MACs' order and with the first device's."""
    rows = []
    for key, group in frame.groupby(list(GROUP), sort=True):
        devices = sorted(group["device"].unique())
        base = group[group["device"] == devices[0]].set_index("model_label")["median_ms"]
        for device in devices:
            sel = group[group["device"] == device].set_index("model_label")
            rho_macs = spearmanr(sel["macs"], sel["median_ms"]).statistic if len(sel) > 2 else float("nan")
            rho_first = spearmanr(base[sel.index], sel["median_ms"]).statistic if len(sel) > 2 else float("nan")
            rows.append({**dict(zip(GROUP, key, strict=True)), "device": device, "models": len(sel),
                         "rho_with_macs": rho_macs, "rho_with_" + "first_device": rho_first})  # fmt: skip
    return pd.DataFrame(rows)
