"""A batch_size over the rows a run fits on trains as one batch of all of them, said once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mnist_doe import train
from mnist_doe.common import files, paths

from test_train import cell, stage_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("family", ["dense", "mlp"])
def test_a_batch_larger_than_the_data_is_capped_at_the_rows_and_said_once(stage_dir, capsys, family):  # noqa: F811
    raw = yaml.safe_load(open("params.yaml"))
    raw["split"]["replicates"] = 2  # two runs, one line
    with open("params.yaml", "w") as handle:
        yaml.safe_dump(raw, handle)
    results = {}
    for batch in (10**9, 240):  # 240: the rows each run fits on in stage_dir
        train.train_cell(cell(family, epochs=2, batch_size=batch))
        out = capsys.readouterr().out
        said = [line for line in out.splitlines() if "batch_size" in line]
        if batch == 240:
            assert said == []
        else:
            assert said == [f"train@{family}-1x16: batch_size 1,000,000,000 is more than the 240 rows a run "
                            "fits on; each epoch is one batch of all of them"], out
        results[batch] = files.load_npz(paths.PREDICTIONS_DIR / f"{family}-1x16.npz")
        summary = json.loads((paths.PREDICTIONS_DIR / f"{family}-1x16.json").read_text())
        assert summary["params"]["batch_size"] == batch  # the summary keeps what params.yaml says
    for split in ("val", "test"):
        np.testing.assert_array_equal(results[10**9][split], results[240][split])
