"""Data model validation: messages name the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import (
    Pair,
    SampleResult,
    SplitCard,
    load_jsonl,
    load_yaml_model,
)

SHA = "a" * 64


def _clip(clip_id: str, source: str) -> dict:
    return {"clip_id": clip_id, "path": f"media/{clip_id}.mp4", "sha256": SHA, "source_video": source,
            "start_s": 0.0, "duration_s": 4.84, "fps": 25.0}


def _pair(**changes: object) -> dict:
    pair = {"pair_id": "p1", "speaker_id": "s1", "kind": "same-video", "reference": _clip("r", "v1"),
            "target": _clip("t", "v1"), "prompt": "[VISUAL]: a man. [SPEECH]: Hello there. [SOUNDS]: calm, rain",
            "transcript": "Hello there.", "speaking_style": "calm", "environment_sounds": "rain"}
    pair.update(changes)
    return pair


def _write(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_valid_pair_loads_and_exposes_prompt_parts(tmp_path: Path) -> None:
    [pair] = load_jsonl(Pair, _write(tmp_path, [_pair()]))
    assert pair.prompt_parts == {"visual": "a man.", "speech": "Hello there.", "sounds": "calm, rain"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"kind": "sideways"}, "kind", "same-video"),
        ({"prompt": "Hello there."}, "prompt", "[VISUAL]"),
        ({"transcript": "Something else."}, "(record)", "[SPEECH] part must equal"),
        ({"kind": "cross-video"}, "(record)", "different source_video"),
        ({"reference": {**_clip("r", "v1"), "sha256": "xyz"}}, "reference.sha256", "pattern"),
        ({"target": {**_clip("t", "v1"), "path": "../outside.mp4"}}, "target.path", "relative path"),
        ({"unexpected": 1}, "unexpected", "Extra inputs"),
    ],
)
def test_invalid_pair_names_file_line_and_field(tmp_path: Path, changes: dict, field: str, message: str) -> None:
    path = _write(tmp_path, [_pair(), _pair(pair_id="p2", **changes)])
    with pytest.raises(ValidationError) as info:
        load_jsonl(Pair, path)
    text = str(info.value)
    assert f"{path} line 2" in text and f"field '{field}'" in text and message in text


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(_pair()) + "\n\n{not json\n")
    with pytest.raises(ValidationError, match=r"pairs.jsonl line 3: invalid JSON"):
        load_jsonl(Pair, path)


def test_card_expected_kinds_must_add_up(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text("name: x\nversion: '1'\ndescription: d\nsource_dataset: s\nprotocol: p\nmedia: shipped\n"
                    "licence: l\nexpected: {pairs: 3, speakers: 1, kinds: {same-video: 1, cross-video: 1}}\n")
    with pytest.raises(ValidationError, match=r"card.yaml: field 'expected'.*do not add up"):
        load_yaml_model(SplitCard, path)


def _result(**changes: object) -> dict:
    row = {"run_id": "r", "method": "m", "split": "s", "pair_id": "p", "speaker_id": "k", "kind": "same-video",
           "profile": "offline", "metric": "wer", "metric_impl": "wer.x", "metric_version": "1",
           "direction": "lower", "status": "ok", "value": 0.5}
    row.update(changes)
    return row


def test_sample_result_status_and_value_agree() -> None:
    SampleResult.model_validate(_result())
    SampleResult.model_validate(_result(status="failed", value=None, reason="no_face: none"))
    with pytest.raises(Exception, match="never a 0.0"):
        SampleResult.model_validate(_result(status="failed", value=0.0, reason="no_face: none"))
    with pytest.raises(Exception, match="needs a reason"):
        SampleResult.model_validate(_result(status="failed", value=None))
    with pytest.raises(Exception, match="finite value"):
        SampleResult.model_validate(_result(value=float("nan")))
