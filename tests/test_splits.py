"""Split registry: loading, validation of counts and media checksums, external splits' data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from idlora_bench.cli import main
from idlora_bench.core.errors import ValidationError
from idlora_bench.data.splits import load_split, split_registry, validate_split


def test_registry_lists_repo_and_extra_splits(synth_split: Path) -> None:
    names = split_registry().names()
    assert {"celebvhq-easy", "celebvhq-hard", "talkvid", "synth"} <= set(names)


def test_protocol_cards_carry_the_paper_counts() -> None:
    from idlora_bench.data.splits import load_card

    easy, hard, talk = (load_card(n)[0] for n in ("celebvhq-easy", "celebvhq-hard", "talkvid"))
    assert (easy.expected.pairs, easy.expected.speakers, dict(easy.expected.kinds)) == (36, 14, {"same-video": 36})
    assert (hard.expected.pairs, hard.expected.speakers, dict(hard.expected.kinds)) == (35, 8, {"cross-video": 35})
    assert (talk.expected.pairs, talk.expected.speakers) == (49, 41)
    assert dict(talk.expected.kinds) == {"same-video": 18, "cross-video": 31}
    assert all(card.media == "external" for card in (easy, hard, talk))


def test_external_split_without_data_root_says_how_to_fix() -> None:
    with pytest.raises(ValidationError, match=r"--data-root DIR or set \$IDLORA_BENCH_DATA.*DIR/celebvhq-hard/pairs.jsonl"):
        load_split("celebvhq-hard")


def test_external_split_loads_from_data_root(tmp_path: Path) -> None:
    from synthetic import make_synthetic_split

    root = tmp_path / "data"
    made = make_synthetic_split(root, name="celebvhq-hard", speakers=2)
    split = load_split("celebvhq-hard", data_root=root)
    assert split.media_root == made and len(split.pairs) == 4
    report = validate_split(split)
    assert not report.ok and any("card expects 35" in p for p in report.problems)  # counts are checked


def test_validate_passes_then_names_the_changed_file(synth_split: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["splits", "validate", "synth", "--decode"]) == 0
    target = synth_split / "media" / "s1-v1-b.mp4"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["splits", "validate", "synth"]) == 1
    err = capsys.readouterr().err
    assert "s1-v1-b.mp4" in err and "sha256" in err and "does not match" in err


def test_duplicate_pair_id_names_the_line(synth_split: Path) -> None:
    path = synth_split / "pairs.jsonl"
    lines = path.read_text().splitlines()
    lines.append(lines[0])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError, match=r"pairs.jsonl line 7: field 'pair_id': 'p0-same-video' repeats line 1"):
        load_split("synth")


def test_missing_media_is_reported(synth_split: Path) -> None:
    (synth_split / "media" / "s0-v2-a.mp4").unlink()
    report = validate_split(load_split("synth"))
    assert [p for p in report.problems if "s0-v2-a.mp4: missing" in p]


def test_show_and_list_run(synth_split: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["splits", "list"]) == 0
    assert main(["splits", "show", "synth"]) == 0
    assert "synthetic test split" in capsys.readouterr().out
    assert main(["splits", "show", "synht"]) == 2
    assert "Did you mean 'synth'" in capsys.readouterr().err.replace("\n", " ")
