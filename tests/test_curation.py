"""Splits from raw data: ``bench splits build`` from synthetic raw videos, and the hygiene report flagging planted
problems by pair id while a clean split passes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_raw_videos, write_external_card

from idlora_bench.cli import main
from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import Pair
from idlora_bench.curation.build import build_split
from idlora_bench.curation.check import check_split
from idlora_bench.curation.training_list import load_training_list
from idlora_bench.data.media import decode, probe, write_mp4
from idlora_bench.data.splits import load_split

NAME = "raw-built"
KINDS = {"same-video": 4, "cross-video": 4}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Raw 15 s videos (2 speakers x 2 videos, 30 fps, 44.1 kHz stereo), their spec, a card, and one build."""
    root = tmp_path_factory.mktemp("raw")
    rows = make_raw_videos(root / "videos")
    spec = root / "spec.jsonl"
    spec.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_external_card(root / "cards", NAME, pairs=8, speakers=2, kinds=KINDS)
    return {"root": root, "rows": rows, "spec": spec, "cards": root / "cards", "data": root / "data"}


@pytest.fixture
def registered(raw: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(raw["cards"]))
    return raw


@pytest.fixture(scope="module")
def built(raw: dict) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IDLORA_BENCH_SPLITS", str(raw["cards"]))
        build_split(NAME, raw["spec"], raw["root"] / "videos", raw["data"], trim_silence_dbfs=-40)
    return raw["data"] / NAME


def test_raw_videos_are_15_s_at_30_fps(raw: dict) -> None:
    info = probe(raw["root"] / "videos" / "hopper-v1.mp4")
    assert info.video_duration_s == pytest.approx(15.0, abs=0.04)
    media = decode(raw["root"] / "videos" / "hopper-v1.mp4")
    assert media.fps == 30 and media.sample_rate == 44_100 and media.audio.shape[0] == 2


def test_build_writes_a_split_that_validates_and_scores(registered: dict, built: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["splits", "validate", NAME, "--data-root", str(registered["data"]), "--decode"]) == 0
    split = load_split(NAME, registered["data"])
    assert len(split.pairs) == 8
    for pair in split.pairs:
        target = decode(split.media_path(pair.target))
        assert target.num_frames == 121 and target.fps == 25.0
        assert target.sample_rate == 44_100 and target.audio.shape[0] == 2  # native rate and channels kept
        assert pair.target.start_s == 5.0 and pair.target.duration_s == pytest.approx(4.84)
    build = json.loads((built / "build.json").read_text())
    assert build["trim_silence_dbfs"] == -40 and build["spec_sha256"] == file_sha256(registered["spec"])
    assert {c["source_fps"] for c in build["clips"].values()} == {30.0}
    trimmed = split.pairs[0].reference  # the demo voices start after a short pause: trimmed and recorded
    assert trimmed.start_s > 0.0 and trimmed.duration_s < 5.0
    runs = tmp_path / "runs"
    assert main(["run", "--method", "gt", "--split", NAME, "--data-root", str(registered["data"]), "--profile",
                 "fake", "--runs-root", str(runs)]) == 0
    rows = [json.loads(line) for line in (runs / NAME / "gt-seed0" / "results-fake.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(row["status"] == "ok" for row in rows)


def _csv_spec(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_an_overlapping_same_video_line_is_refused_by_line_number(registered: dict, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rows = [dict(r) for r in registered["rows"]]
    same = next(i for i, r in enumerate(rows) if r["kind"] == "same-video")
    rows[same]["reference_end_s"] = 6.0  # [0, 6) overlaps the target [5, 9.84)
    spec = _csv_spec(rows, tmp_path / "spec.csv")
    assert main(["splits", "build", NAME, "--spec", str(spec), "--videos", str(registered["root"] / "videos"),
                 "--out", str(tmp_path / "data")]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"spec.csv line {same + 2}:" in message and "overlaps target [5.0, 9.84) s of the same video" in message
    assert not (tmp_path / "data" / NAME).exists()


def test_a_missing_video_and_a_short_source_name_the_line_and_leave_nothing(registered: dict, tmp_path: Path) -> None:
    rows = [dict(r) for r in registered["rows"]]
    rows[3]["target_video"] = "nowhere.mp4"
    rows[3]["kind"] = "cross-video"
    spec = _csv_spec(rows, tmp_path / "spec.csv")
    with pytest.raises(ValidationError, match=r"spec.csv line 5: field 'target_video': .*nowhere.mp4 does not exist"):
        build_split(NAME, spec, registered["root"] / "videos", tmp_path / "data")
    rows = [dict(r) for r in registered["rows"]]
    rows[1]["target_start_s"] = 12.0  # 12 + 4.84 > 15 s
    spec = _csv_spec(rows, tmp_path / "late.csv")
    with pytest.raises(ValidationError, match=r"late.csv line 3: .* has no frames for \[12.000, 16.840\)"):
        build_split(NAME, spec, registered["root"] / "videos", tmp_path / "data")
    assert not any((tmp_path / "data").iterdir())  # the staging folder is gone too


def test_the_built_split_is_clean(registered: dict, built: Path) -> None:
    report = check_split(load_split(NAME, registered["data"]))
    assert report.ok, report.to_markdown()
    assert len(report.pairs) == 8 and all(row["speaker_similarity"] > 0.65 for row in report.pairs.values())


def _planted(registered: dict, built: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the built split with a duplicate, a silent reference and a faceless target planted."""
    root = tmp_path / "planted"
    shutil.copytree(built, root / NAME)
    pairs = [json.loads(line) for line in (root / NAME / "pairs.jsonl").read_text().splitlines()]
    clips = root / NAME / "clips"
    # duplicate: pair 1's target re-used under another clip id by pair 3 (same bytes)
    dup = dict(pairs[1]["target"], clip_id="copy-tgt", path="clips/copy-tgt.mp4",
               source_video=pairs[3]["target"]["source_video"])  # the source ids stay: the kinds stay valid
    shutil.copyfile(clips / Path(pairs[1]["target"]["path"]).name, clips / "copy-tgt.mp4")
    pairs[3] = dict(pairs[3], target=dup)
    # silent: pair 5's reference audio replaced by digital silence
    ref = decode(root / NAME / pairs[5]["reference"]["path"])
    write_mp4(clips / "silent-ref.mp4", ref.frames, ref.fps, np.zeros_like(ref.audio), ref.sample_rate)
    pairs[5] = dict(pairs[5], reference=dict(pairs[5]["reference"], clip_id="silent-ref", path="clips/silent-ref.mp4",
                                              sha256=file_sha256(clips / "silent-ref.mp4")))
    # faceless: pair 6's target frames replaced by noise
    tgt = decode(root / NAME / pairs[6]["target"]["path"])
    noise = np.random.default_rng(0).integers(0, 256, tgt.frames.shape, dtype=np.uint8)
    write_mp4(clips / "noise-tgt.mp4", noise, tgt.fps, tgt.audio, tgt.sample_rate)
    pairs[6] = dict(pairs[6], target=dict(pairs[6]["target"], clip_id="noise-tgt", path="clips/noise-tgt.mp4",
                                           sha256=file_sha256(clips / "noise-tgt.mp4")))
    (root / NAME / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return root, {"duplicate": pairs[3]["pair_id"], "silent": pairs[5]["pair_id"], "faceless": pairs[6]["pair_id"]}


def test_check_flags_a_planted_leak_duplicate_silent_and_faceless_clip_by_pair(
        registered: dict, built: Path, tmp_path: Path) -> None:
    root, planted = _planted(registered, built, tmp_path)
    split = load_split(NAME, root)
    target_video = split.pairs[0].target.source_video
    train = tmp_path / "metadata.jsonl"  # the authors' training metadata shape: one JSON object per line
    train.write_text(json.dumps({"video_path": f"videos/{target_video}.mp4", "caption": "..."}) + "\n"
                     + json.dumps({"video_path": "videos/unrelated.mp4", "caption": "..."}) + "\n")
    report = check_split(split, training=load_training_list(train))
    leaked = {p.pair_id for p in split.pairs if target_video in (p.target.source_video, p.reference.source_video)}
    assert report.flagged("leakage") == leaked and split.pairs[0].pair_id in leaked
    assert planted["duplicate"] in report.flagged("duplicate") | report.flagged("near_duplicate")
    assert planted["silent"] in report.flagged("no_speech")
    assert planted["faceless"] in report.flagged("face")
    out = tmp_path / "report"
    md, js = report.write(out)
    assert planted["faceless"] in md.read_text() and json.loads(js.read_text())["ok"] is False


def test_identity_mismatch_probe_pairs_one_voice_with_another_face(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "probes"
    assert main(["splits", "probe", "identity-mismatch", "--from", "demo", "--out", str(out)]) == 0
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(out))
    probe = load_split("demo-identity-mismatch")
    demo = {p.pair_id: p for p in load_split("demo").pairs}
    assert len(probe.pairs) == 16 and probe.card.expected.kinds == {"cross-video": 16}
    assert "follows the voice reference" in probe.card.protocol and "speaker_similarity" in probe.card.protocol
    for pair in probe.pairs:
        source = demo[pair.pair_id.split("-x-")[0]]
        assert pair.reference.sha256 == source.reference.sha256 and pair.transcript == source.transcript
        face_owner = pair.pair_id.split("-x-")[1]
        assert face_owner != source.speaker_id
        composite = decode(probe.media_path(pair.target))
        voice = decode(load_split("demo").media_path(source.target))
        n = min(composite.audio.shape[1], voice.audio.shape[1]) - 2048
        # the composite's audio is the source target's (AAC re-encoded), its frames another speaker's
        assert np.corrcoef(composite.audio[0, 1024:n], voice.audio[0, 1024:n])[0, 1] > 0.9
    assert main(["splits", "validate", "demo-identity-mismatch", "--decode"]) == 0


def test_quiet_to_noisy_probe_keeps_the_pairs_with_a_quiet_reference_and_an_eventful_target(tmp_path: Path,
                                                                                        monkeypatch: pytest.MonkeyPatch
                                                                                        ) -> None:
    from idlora_bench.curation.probes import build_probe, floor_dbfs

    demo = load_split("demo")
    folder = build_probe("quiet-to-noisy", demo, tmp_path)
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(tmp_path))
    probe = load_split(folder.name)
    kept = {p.pair_id for p in probe.pairs}
    for pair in demo.pairs:
        reference, target = floor_dbfs(demo.media_path(pair.reference)), floor_dbfs(demo.media_path(pair.target))
        expected = reference < -50 and target >= reference + 10 and "none" not in pair.environment_sounds.lower()
        assert (pair.pair_id in kept) == expected, (pair.pair_id, reference, target)
    assert 0 < len(kept) < len(demo.pairs) and "quiet_reference_dbfs" in probe.card.protocol
    with pytest.raises(ValidationError, match="no pair of 'demo' qualifies"):
        build_probe("quiet-to-noisy", demo, tmp_path / "strict", quiet_dbfs=-300.0)


def _release(tmp_path: Path) -> tuple[Path, dict[str, Pair]]:
    """A folder in the authors' evaluation layout made from the demo split: references/, targets/, captions.jsonl."""
    demo = load_split("demo")
    root = tmp_path / "release"
    for role in ("references", "targets"):
        (root / role).mkdir(parents=True)
    records = []
    for index, pair in enumerate(demo.pairs):
        shutil.copyfile(demo.media_path(pair.reference), root / "references" / f"{pair.pair_id}.mp4")
        shutil.copyfile(demo.media_path(pair.target), root / "targets" / f"{pair.pair_id}.mp4")
        visual = pair.prompt_parts["visual"]
        if index % 2:  # the older separate tags
            caption = (f"[VISUAL]: {visual}\n[SPEECH]: {pair.transcript}\n[SPEAKING_STYLE]: {pair.speaking_style}\n"
                       f"[ENVIRONMENT_SOUNDS]: {pair.environment_sounds}\n[TEXT]: none")
        else:
            caption = f"[VISUAL]: {visual}\n[SPEECH]: {pair.transcript}\n[SOUNDS]: {pair.prompt_parts['sounds']}"
        records.append({"file_name": f"{pair.pair_id}.mp4", "caption": caption, "speaker_id": pair.speaker_id,
                        "kind": pair.kind, "reference_source_video": pair.reference.source_video,
                        "target_source_video": pair.target.source_video})
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root, {p.pair_id: p for p in demo.pairs}


def test_import_of_the_release_layout_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    release, demo = _release(tmp_path)
    write_external_card(tmp_path / "cards", "imported", pairs=16, speakers=4, kinds={"same-video": 8, "cross-video": 8})
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(tmp_path / "cards"))
    assert main(["splits", "import", "imported", "--from", str(release), "--out", str(tmp_path / "data")]) == 0
    assert "only [SOUNDS]" in capsys.readouterr().err  # said, not hidden
    assert main(["splits", "validate", "imported", "--data-root", str(tmp_path / "data"), "--decode"]) == 0
    imported = load_split("imported", tmp_path / "data")
    for pair in imported.pairs:
        source = demo[pair.pair_id]
        assert (pair.speaker_id, pair.kind, pair.transcript) == (source.speaker_id, source.kind, source.transcript)
        assert pair.reference.sha256 == source.reference.sha256 and pair.target.sha256 == source.target.sha256
        assert pair.prompt_parts["visual"] == source.prompt_parts["visual"]
        if "[SPEAKING_STYLE]" in (release / "captions.jsonl").read_text().splitlines()[int(pair.pair_id[-2:])]:
            assert (pair.speaking_style, pair.environment_sounds) == (source.speaking_style, source.environment_sounds)
        else:
            assert pair.speaking_style == pair.environment_sounds == source.prompt_parts["sounds"]


def test_import_refuses_an_unmatched_file_by_name_and_writes_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from idlora_bench.curation.importer import import_release

    release, _ = _release(tmp_path)
    shutil.copyfile(release / "targets" / "demo-00.mp4", release / "targets" / "stray-07.mp4")
    (release / "references" / "demo-03.mp4").unlink()
    write_external_card(tmp_path / "cards", "imported", pairs=16, speakers=4, kinds={"same-video": 8, "cross-video": 8})
    monkeypatch.setenv("IDLORA_BENCH_SPLITS", str(tmp_path / "cards"))
    with pytest.raises(ValidationError) as error:
        import_release("imported", release, tmp_path / "data")
    message = str(error.value)
    assert "targets/stray-07.mp4: no reference stray-07.* in references/" in message
    assert "targets/demo-03.mp4: no reference demo-03.* in references/" in message
    assert "captions.jsonl: caption for 'demo-03' matches no file" in message
    assert "3 file(s) cannot be matched, nothing written" in message
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
