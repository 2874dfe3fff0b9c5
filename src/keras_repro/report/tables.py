"""Every value of every run as one tidy table (histories.csv)."""

from __future__ import annotations

import pandas as pd

from keras_repro.records import RunRecord

COLUMNS = ["seed", "repeat", "epoch", "metric", "value", "value_hex"]


def tidy_histories(records: list[RunRecord]) -> pd.DataFrame:
    """One row per seed, repeat, epoch and metric (evaluate() with an empty epoch)."""
    rows = []
    for record in records:
        for metric, values in record.history.items():
            for epoch, value in enumerate(values, start=1):
                rows.append((record.seed, record.repeat, epoch, metric, value, value.hex()))
        for metric, value in record.evaluation.items():
            rows.append(
                (record.seed, record.repeat, None, f"evaluate_{metric}", value, value.hex())
            )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame.sort_values(["seed", "repeat", "metric", "epoch"], ignore_index=True)
