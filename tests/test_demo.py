"""The README's main job, ``sk-asd demo``, in its quick setting."""

from __future__ import annotations

import re

from sk_asd.cli.main import main


def test_quick_demo_trains_scores_and_prints_the_table(capsys):
    assert main(["demo", "--quick", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # The default detector's row comes first, the strongest simple baseline
    # and chance right after it.
    rows = [line for line in lines if re.search(r"\d+\.\d/ *\d+\.\d", line)]
    assert rows[0].startswith("sk_asd defaults (scoring='fusion')")
    assert rows[1].startswith("baseline: log-band Gaussian")
    assert rows[2].startswith("chance")
    for row in (
        "sk_asd defaults",
        "baseline",
        "chance",
        "  same detector, scoring='nll'",
        "  same detector, scoring='knn'",
        "  same detector, scoring='kmeans'",
    ):
        line = next(line for line in out.splitlines() if line.startswith(row))
        numbers = [float(x) for x in re.findall(r"\d+\.\d", line)]
        # Four machines and the mean, each an AUC / pAUC pair in percent.
        assert len(numbers) == 10
        assert all(0.0 <= x <= 100.0 for x in numbers)
    assert "flagged" in out and "false alarms" in out
    assert "50 = chance" in out
