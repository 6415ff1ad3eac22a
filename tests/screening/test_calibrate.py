"""`guardrail refs calibrate` on real photos: thresholds that keep every negative out, the recall they
give per family, and the policy file updated with its comments kept."""

import json
from pathlib import Path

import guardrail
from tests.cli.test_cli import run
from tests.screening.test_screening import photo


def test_calibrate_picks_thresholds_and_writes_them(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "protected").mkdir()
    (tmp_path / "others").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        photo(name).save(tmp_path / "protected" / f"{name}.png")
    for name in ("camera", "rocket", "horse", "moon", "coins", "page"):
        photo(name).save(tmp_path / "others" / f"{name}.png")
    code, _, err = run(capsys, "refs", "add", "brand", "protected")
    assert code == 0, err
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: p  # our policy\nscreening:\n  sets:\n    brand: {action: block}  # the brand's images\n")
    code, out, err = run(
        capsys, "refs", "calibrate", "brand", "--negatives", "others", "--variants", "1", "--json",
        "--write", str(policy),
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["positives"] == 3 * 16 and result["negatives"] == 6 * 4  # 12 families and 4 hard ones
    assert result["fpr"] == 0.0  # 0.1 % of 24 negatives allows none
    assert 0 <= result["max_distance"] <= 32 and result["min_inliers"] >= 4
    assert result["recall"] >= 0.7 and result["by_family"]["jpeg"]["both"] == 1.0
    assert "composite 20-50%" in result["by_family"]
    text = policy.read_text()
    assert "# our policy" in text and "# the brand's images" in text  # comments kept
    sets = guardrail.parse_policy(text).screening.sets
    assert (sets["brand"].max_distance, sets["brand"].min_inliers) == (result["max_distance"], result["min_inliers"])
    code, _, err = run(capsys, "refs", "calibrate", "brand", "--negatives", "others", "--write", "nope.yaml")
    assert code == 2
