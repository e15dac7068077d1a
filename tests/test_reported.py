"""The paper's numbers as data: every value of leaderboard/reported/table{1,2,4,5}.csv is checked against the
tables' lines as printed (leaderboard/reported/paper_tables_excerpt.txt), and those lines against the paper."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import REPO_ROOT

REPORTED = REPO_ROOT / "leaderboard" / "reported"
PAPER = REPO_ROOT.parent / "shared" / "seeds" / "idlora-paper-2603.10256.txt"
SPLIT_PREFIX = {"C-Easy": "celebvhq-easy", "C-Hard": "celebvhq-hard", "TalkVid": "talkvid"}
SIX = ["speaker_similarity", "face_similarity", "lse_d", "lse_c", "clap", "wer"]
NUMBER = re.compile(r"\d+\.\d+")


def _excerpt() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in (REPORTED / "paper_tables_excerpt.txt").read_text().splitlines():
        if line.startswith("## "):
            current = line[3:]
            sections[current] = []
        elif line.strip() and not line.startswith("#"):
            sections[current].append(line)
    return sections


def _csv(table: str) -> pd.DataFrame:
    return pd.read_csv(REPORTED / f"{table}.csv", dtype={"value": str})


@pytest.mark.parametrize("table", ["table1", "table2"])
def test_six_metric_tables_match_the_printed_lines(table: str) -> None:
    lines = _excerpt()[table]
    data = _csv(table)
    assert len(data) == 6 * len(lines) == 96
    split = None
    for line, (_, group) in zip(lines, data.groupby(["split", "method"], sort=False)):
        first = line.split()[0]
        split = SPLIT_PREFIX.get(first, split)
        assert group["split"].iloc[0] == split, line
        assert group["metric"].tolist() == SIX, line
        assert group["value"].tolist() == NUMBER.findall(line)[-6:], line  # as printed, digit for digit


def test_table4_matches_the_printed_lines() -> None:
    lines = _excerpt()["table4"]
    data = _csv("table4")
    assert len(data) == 6 * len(lines) == 30
    for line, (method, group) in zip(lines, data.groupby("method", sort=False)):
        assert line.startswith(method + " ")
        expected = NUMBER.findall(line)
        got = [group[(group["split"] == s) & (group["metric"] == m)]["value"].item()
               for s in ("celebvhq-hard", "celebvhq-easy", "talkvid") for m in ("lip_motion", "face_similarity")]
        assert got == expected, line


def test_table5_matches_the_printed_lines() -> None:
    lines = _excerpt()["table5"]
    data = _csv("table5")
    assert len(data) == 5 * len(lines) == 40
    for line, (_, group) in zip(lines, data.groupby("identity_guidance_scale_paper", sort=False)):
        assert str(group["identity_guidance_scale_paper"].iloc[0]) == line.split()[0]
        assert group["value"].tolist() == NUMBER.findall(line), line
        assert group["metric"].tolist() == ["speaker_similarity", "face_similarity", "lse_d", "clap", "wer"]
    assert set(data["split"]) == {"celebvhq-hard"}


def test_known_values_spot_check() -> None:
    t1 = _csv("table1").set_index(["split", "method", "metric"])["value"]
    assert t1[("celebvhq-hard", "ID-LoRA", "speaker_similarity")] == "0.477"
    assert t1[("talkvid", "ID-LoRA (Celeb -> TalkVid)", "clap")] == "0.412"
    t2 = _csv("table2").set_index(["split", "method", "metric"])["value"]
    assert t2[("celebvhq-easy", "LTX-Zeroshot", "wer")] == "4.634"


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper text (../shared/seeds/) is not beside this checkout")
def test_excerpt_lines_are_verbatim_in_the_paper() -> None:
    paper_lines = set(PAPER.read_text().splitlines())
    for table, lines in _excerpt().items():
        for line in lines:
            assert line in paper_lines, f"{table}: {line!r} is not a line of the paper"
