"""The measuring stage: sweep specs, trials, statistics, sweeps, op profiles and roofline calibration."""
