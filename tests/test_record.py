"""The run record reads back exactly what was written, and refuses inconsistent edits."""

from __future__ import annotations

import json
import math

import pytest
from records import make_record, next_float32

from keras_repro.records.record import RecordError, read_record, write_record


def test_round_trip_is_exact(tmp_path):
    record = make_record()
    record.history["loss"][0] = next_float32(record.history["loss"][0])
    write_record(record, tmp_path / "history.json")
    assert read_record(tmp_path / "history.json") == record


def test_nan_and_infinity_survive(tmp_path):
    record = make_record()
    record.history["loss"] = [math.nan, math.inf]
    write_record(record, tmp_path / "history.json")
    text = (tmp_path / "history.json").read_text()
    json.loads(text)  # strict JSON: no bare NaN
    assert "NaN" not in text
    loss = read_record(tmp_path / "history.json").history["loss"]
    assert math.isnan(loss[0]) and loss[1] == math.inf


def test_editing_one_representation_only_is_refused(tmp_path):
    path = tmp_path / "history.json"
    write_record(make_record(), path)
    data = json.loads(path.read_text())
    data["history"]["val_loss"]["decimal"][1] += 1e-3
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"history\.val_loss\[1\]: hex .* disagrees with decimal"):
        read_record(path)


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [0.1]}))
    with pytest.raises(RecordError, match="not a keras-repro/run-record v1 file"):
        read_record(path)
