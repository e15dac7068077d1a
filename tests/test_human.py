"""Human studies: A/B and MOS study design (Latin square, A/B order, controls), the answer store and server, the
study pages in headless Chromium (watch-gating), and the analysis on simulated answers with known rates."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idlora_bench.core.errors import ValidationError
from idlora_bench.core.io import file_sha256
from idlora_bench.data.splits import load_split
from idlora_bench.human.model import Study, load_study
from idlora_bench.human.responses import Refused, ResponseStore
from idlora_bench.human.study import build_ab_study, build_mos_study

GOOD_RATES = {"first": 0.6, "equal": 0.15, "second": 0.25}  # simulated A/B annotators who pass the controls
MOS_PROBABILITIES = {"gt": [0.05, 0.10, 0.30, 0.35, 0.20], "swap-speaker": [0.20, 0.20, 0.30, 0.20, 0.10]}


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gt and swap-speaker runs of the demo split (fake metric profile): real 4.84 s mp4 outputs."""
    from idlora_bench import runner

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for method in ("gt", "swap-speaker"):
        runner.run(method, "demo", profile="fake", out_dir=root / method, cache_path=root / "cache.sqlite")
        runs[method] = root / method
    return runs


def _watched(study: Study, item_id: str) -> list[dict[str, object]]:
    item = study.item(item_id)
    return [{"ended": True}] * (len(item.candidates) + (item.reference_media is not None))


def _slot_pairs(study: Study) -> dict[int, dict[str, set[str]]]:
    """slot -> pair id -> levels it is shown under: questions of test and control items (A/B), runs of test items
    (MOS; its controls show no run)."""
    items = study.items_by_id()
    seen: dict[int, dict[str, set[str]]] = {}
    for slot in study.slots:
        by_pair: dict[str, set[str]] = defaultdict(set)
        for item_id in slot.item_ids:
            item = items[item_id]
            if item.kind == "practice" or (study.kind == "mos" and item.kind == "control"):
                continue
            by_pair[item.pair_id].add(item.question if study.kind == "ab" else item.candidates[0].source)
        seen[slot.slot] = by_pair
    return seen


# ------------------------------------------------------------------------------------------ design
def test_ab_study_latin_square_order_controls_and_context(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    study = build_ab_study(demo_runs["gt"], demo_runs["swap-speaker"], "demo", tmp_path / "ab", annotators_per_item=2,
                           seed=3)
    split = load_split("demo")
    items = study.items_by_id()
    tests = [item for item in study.items if item.kind == "test"]
    assert {(i.pair_id, i.question) for i in tests} == {(p.pair_id, q) for p in split.pairs
                                                       for q in ("voice", "environment", "manner")}
    assert len(tests) == 16 * 3
    # no annotator sees a pair under two question types (tests and hidden controls), and every slot sees every pair
    for slot, by_pair in _slot_pairs(study).items():
        assert all(len(levels) == 1 for levels in by_pair.values()), slot
        assert len(by_pair) == 16
    # each test item is rated by annotators_per_item slots
    counts = pd.Series([i for slot in study.slots for i in slot.item_ids if items[i].kind == "test"]).value_counts()
    assert set(counts) == {2}
    # A/B order drawn per (pair, question): both orders occur and some pair has different orders across questions
    orders = defaultdict(set)
    for item in tests:
        orders[item.pair_id].add(item.candidates[0].source)
    assert any(len(first) == 2 for first in orders.values())
    assert {item.candidates[0].source for item in tests} == {"gt", "swap-speaker"}
    # context: reference video for voice, the pair's texts for environment and manner
    site = tmp_path / "ab" / "site"
    for item in tests:
        pair = split.pair(item.pair_id)
        if item.question == "voice":
            assert file_sha256(site / item.reference_media) == pair.reference.sha256 and item.description is None
        else:
            expected = pair.environment_sounds if item.question == "environment" else pair.speaking_style
            assert item.description == expected and item.reference_media is None
    # controls: the known answer is the position of the pair's own target; the foil is another speaker's target
    controls = [item for item in study.items if item.kind == "control"]
    assert len(controls) == 3 * 3  # one per (group, question) of the single chunk
    for item in controls:
        position = "AB"[[c.source for c in item.candidates].index("ground-truth")]
        assert item.expected == [position]
        foil = split.pair(next(c.source for c in item.candidates if c.source.startswith("foil:")).split(":", 1)[1])
        own = split.pair(item.pair_id)
        assert foil.speaker_id != own.speaker_id
        own_media = next(c.media for c in item.candidates if c.source == "ground-truth")
        assert file_sha256(site / own_media) == own.target.sha256
        if item.question == "environment":
            assert foil.environment_sounds != own.environment_sounds
    # the public card lists reveal neither controls nor methods nor the split's public hashes
    public = "".join(p.read_text() for p in (site / "slots").glob("*.json")) + (site / "public.json").read_text()
    for secret in ("swap-speaker", "ground-truth", "foil", '"control"', '"expected"'):
        assert secret not in public
    split_hashes = {clip.sha256[:16] for pair in split.pairs for clip in (pair.reference, pair.target)}
    assert not split_hashes & {p.stem for p in (site / "media").iterdir()}
    assert not (site / "study.json").exists()


def test_pairs_with_a_generation_failure_are_left_out_and_counted(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "swap-broken"
    shutil.copytree(demo_runs["swap-speaker"], broken)
    record = json.loads((broken / "videos" / "demo-05.json").read_text())
    record.update(status="failed", reason="generation_error: RuntimeError: out of memory", sha256=None)
    (broken / "videos" / "demo-05.json").write_text(json.dumps(record))
    (broken / "videos" / "demo-05.mp4").unlink()
    (broken / "videos" / "demo-09.mp4").unlink()  # scored, then lost
    study = build_ab_study(demo_runs["gt"], broken, "demo", tmp_path / "ab", annotators_per_item=1)
    assert len(study.pairs) == 14
    reasons = {e.pair_id: (e.run, e.reason) for e in study.excluded_pairs}
    assert reasons["demo-05"] == ("swap-speaker", "generation_error: RuntimeError: out of memory")
    assert reasons["demo-09"][1].startswith("missing_output:")
    assert all(study.item(i).pair_id not in reasons for slot in study.slots for i in slot.item_ids
               if study.item(i).kind == "test")
    with pytest.raises(ValidationError, match="already lives there"):
        build_ab_study(demo_runs["gt"], broken, "demo", tmp_path / "ab")
    with pytest.raises(ValidationError, match="choose distinct keys"):
        build_ab_study(demo_runs["gt"], broken, "demo", tmp_path / "other", questions=["voice", "loudness"])
    (broken / "videos" / "demo-07.mp4").write_bytes(b"not the scored file")
    with pytest.raises(ValidationError, match="changed after scoring"):
        build_ab_study(demo_runs["gt"], broken, "demo", tmp_path / "third")


def test_mos_study_one_method_per_pair_and_silent_controls(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    from idlora_bench.data.media import decode

    study = build_mos_study([demo_runs["gt"], demo_runs["swap-speaker"]], "demo", tmp_path / "mos",
                            question="How well can the described sounds be heard?", annotators_per_item=3,
                            scenario_by="speaker_id")
    for by_pair in _slot_pairs(study).values():
        assert len(by_pair) == 16 and all(len(sources) == 1 for sources in by_pair.values())
    tests = [item for item in study.items if item.kind == "test"]
    assert {(i.pair_id, i.candidates[0].source) for i in tests} == {(p.pair_id, m) for p in load_split("demo").pairs
                                                                     for m in ("gt", "swap-speaker")}
    assert {i.scenario for i in tests} == {p.speaker_id for p in load_split("demo").pairs}
    control = next(item for item in study.items if item.kind == "control")
    assert control.expected == ["1", "2"] and control.candidates[0].source == "silent-ground-truth"
    silent = decode(tmp_path / "mos" / "site" / control.candidates[0].media)
    original = decode(load_split("demo").media_path(load_split("demo").pair(control.pair_id).target))
    assert np.abs(silent.audio).max() == 0.0 and np.abs(original.audio).max() > 0.01
    assert silent.num_frames == original.num_frames


# ------------------------------------------------------------------------------------------ answer store
def test_store_refuses_repeats_binds_slots_and_is_append_only(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    study = build_ab_study(demo_runs["gt"], demo_runs["swap-speaker"], "demo", tmp_path / "ab", annotators_per_item=1)
    store = ResponseStore(study, tmp_path / "answers.sqlite")
    session, answered = store.start_session("w1", 0)
    assert answered == []
    item = study.slots[0].item_ids[1]
    store.record_answer(session, item, "A", _watched(study, item), 1200)
    with pytest.raises(Refused) as repeat:
        store.record_answer(session, item, "B", _watched(study, item))
    assert repeat.value.status == 409 and "first answer stands" in repeat.value.message
    with pytest.raises(Refused) as unwatched:
        store.record_answer(session, study.slots[0].item_ids[2], "A", [{"ended": False}] * 3)
    assert unwatched.value.status == 400
    with pytest.raises(Refused) as foreign:
        store.record_answer(session, study.slots[1].item_ids[1], "A", _watched(study, study.slots[1].item_ids[1]))
    assert foreign.value.status == 404
    with pytest.raises(Refused) as other_slot:
        store.start_session("w1", 1)
    assert other_slot.value.status == 409
    assert store.start_session("w1", 0)[1] == [item]  # a new session resumes where the worker stopped
    with pytest.raises(Refused, match="not answered yet"):
        store.complete(session)
    with sqlite3.connect(tmp_path / "answers.sqlite") as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE responses SET answer = 'B'")
        assert conn.execute("SELECT answer FROM responses").fetchall() == [("A",)]
    other = build_ab_study(demo_runs["gt"], demo_runs["swap-speaker"], "demo", tmp_path / "ab2", annotators_per_item=1)
    with pytest.raises(ValidationError, match="holds the answers of study"):
        ResponseStore(other, tmp_path / "answers.sqlite")


# ------------------------------------------------------------------------------------------ analysis
def _human_cli(*argv: str) -> int:
    from idlora_bench.cli.human import add_human_parser

    parser = argparse.ArgumentParser(prog="bench")
    add_human_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["human", *argv])
    return args.func(args)


def _quota(outcomes: list[str], probabilities: list[float], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` outcomes in the given proportions (rounded, largest remainders), shuffled: a simulated sample whose
    shares are the known rates up to 1/n, so a correct analysis brackets them whatever the seed."""
    exact = np.array(probabilities) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
    return list(rng.permutation(np.repeat(outcomes, counts)))


def _simulate_ab(study: Study, store: ResponseStore, rng: np.random.Generator) -> dict[str, int]:
    """Per slot one good annotator (controls right, tests at GOOD_RATES), plus bad annotators on some slots
    (controls wrong, tests always for the second run) and one who quits before any control."""
    first, second = (run.label for run in study.runs)
    kinds = {"good": 0, "bad": 0, "quit": 0}
    per_question = 16 * study.annotators_per_item
    queues = {q.key: _quota(list(GOOD_RATES), list(GOOD_RATES.values()), per_question, rng) for q in study.questions}

    def answer(annotator: str, slot: int, policy: str, limit: int | None = None) -> None:
        session, _ = store.start_session(annotator, slot)
        item_ids = [i for i in study.slots[slot].item_ids if study.item(i).kind != "control" or limit is None]
        for item_id in item_ids[:limit]:
            item = study.item(item_id)
            positions = {c.source: "AB"[n] for n, c in enumerate(item.candidates)}
            if item.kind != "test":
                wrong = "B" if item.expected == ["A"] else "A"
                choice = item.expected[0] if policy == "good" else wrong
            elif policy == "good":
                pick = queues[item.question].pop()
                choice = {"first": positions[first], "equal": "equal", "second": positions[second]}[pick]
            else:
                choice = positions[second]
            store.record_answer(session, item_id, choice, _watched(study, item_id))

    for slot in study.slots:
        answer(f"good{slot.slot}", slot.slot, "good")
        kinds["good"] += 1
        if slot.slot % 5 == 0:
            answer(f"bad{slot.slot}", slot.slot, "bad")
            kinds["bad"] += 1
    answer("quitter", 1, "bad", limit=4)
    kinds["quit"] += 1
    return kinds


def test_ab_analysis_recovers_known_preference_and_excludes_control_failures(demo_runs: dict[str, Path],
                                                                              tmp_path: Path) -> None:
    study_dir = tmp_path / "ab"
    assert _human_cli("ab", str(demo_runs["gt"]), str(demo_runs["swap-speaker"]), "--split", "demo", "--out",
                      str(study_dir), "--annotators-per-item", "9") == 0
    study = load_study(study_dir)
    assert len(study.slots) == 27
    kinds = _simulate_ab(study, ResponseStore(study, study_dir / "responses.sqlite"), np.random.default_rng(7))
    assert _human_cli("analyze", str(study_dir), "--out", str(tmp_path / "out")) == 0
    annotators = pd.read_csv(tmp_path / "out" / "annotators.csv")
    status = annotators.set_index("annotator_id")["status"]
    assert (status == "failed_control").sum() == kinds["bad"] and status["quitter"] == "incomplete_controls"
    assert (status == "kept").sum() == kinds["good"]
    summary = pd.read_csv(tmp_path / "out" / "ab_summary.csv").set_index("question")
    true_win_rate = GOOD_RATES["first"] / (GOOD_RATES["first"] + GOOD_RATES["second"])
    for question, row in summary.iterrows():
        assert row["n"] == 16 * 9, question  # only the kept annotators' test answers
        assert row["win_rate_low"] <= true_win_rate <= row["win_rate_high"], question
        assert not row["win_rate_low"] <= 0.5 <= row["win_rate_high"], question  # the test can tell 0.5 apart
        assert row["pref_first_low"] <= GOOD_RATES["first"] <= row["pref_first_high"], question
        assert row["pref_equal_low"] <= GOOD_RATES["equal"] <= row["pref_equal_high"], question
        assert row["p_binomial"] < 0.01
        assert 0 < row["agreement"] < 1
    per_pair = pd.read_csv(tmp_path / "out" / "ab_per_pair.csv")
    assert len(per_pair) == 16 * 3 and set(per_pair["n"]) == {9}
    for name in ("ab.md", "ab.tex", "ab_preferences.png", "ab_preferences.svg", "analysis.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert "Voice similarity" in (tmp_path / "out" / "ab.md").read_text()
    assert r"\toprule" in (tmp_path / "out" / "ab.tex").read_text()
    # exports: responses (joined with items) and the assignment list for crowd platforms
    assert _human_cli("export", str(study_dir), "--responses", str(tmp_path / "responses.csv"), "--assignments",
                      str(tmp_path / "assignments.csv"), "--base-url", "https://example.org/study") == 0
    responses = pd.read_csv(tmp_path / "responses.csv")
    assert len(responses) == len(ResponseStore(study, study_dir / "responses.sqlite").responses())
    assert set(responses.loc[responses["kind"] == "test", "chosen"]) == {"gt", "swap-speaker", "equal"}
    assignments = pd.read_csv(tmp_path / "assignments.csv")
    assert assignments.loc[4, "url"] == "https://example.org/study/index.html?slot=4"
    assert assignments.loc[4, "item_ids"].split() == study.slots[4].item_ids
    # the exported CSV analyses to the same numbers
    assert _human_cli("analyze", str(study_dir), "--responses", str(tmp_path / "responses.csv"), "--out",
                      str(tmp_path / "again")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "ab_summary.csv"),
                                  pd.read_csv(tmp_path / "out" / "ab_summary.csv"))


def test_mos_analysis_recovers_means_per_method_and_scenario(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    from idlora_bench.human.analyze import analyze_study

    study = build_mos_study([demo_runs["gt"], demo_runs["swap-speaker"]], "demo", tmp_path / "mos",
                            question="How well can the described sounds be heard?", annotators_per_item=9,
                            scenario_by="speaker_id")
    store = ResponseStore(study, tmp_path / "mos" / "responses.sqlite")
    rng = np.random.default_rng(11)
    queues = {source: _quota(["1", "2", "3", "4", "5"], p, 16 * 9, rng) for source, p in MOS_PROBABILITIES.items()}
    for slot in study.slots:
        for annotator, careless in ((f"w{slot.slot}", False),) + (((f"c{slot.slot}", True),) if slot.slot < 3 else ()):
            session, _ = store.start_session(annotator, slot.slot)
            for item_id in slot.item_ids:
                item = study.item(item_id)
                if careless:
                    rating = "5"  # fails the silent control; would raise every mean if kept
                elif item.kind != "test":
                    rating = item.expected[0]
                else:
                    rating = queues[item.candidates[0].source].pop()
                store.record_answer(session, item_id, rating, _watched(study, item_id))
    analysis = analyze_study(study, tmp_path / "mos", tmp_path / "out")
    assert sorted(analysis.excluded["annotator_id"]) == ["c0", "c1", "c2"]
    summary = analysis.tables["mos_summary"].set_index("source")
    for source, probabilities in MOS_PROBABILITIES.items():
        true_mean = float(np.dot(probabilities, np.arange(1, 6)))
        assert summary.loc[source, "n"] == 16 * 9
        assert summary.loc[source, "ci_low"] <= true_mean <= summary.loc[source, "ci_high"], source
        assert abs(summary.loc[source, "share_bad"] - probabilities[0]) < 0.1
    comparison = analysis.tables["mos_comparisons"].iloc[0]
    assert comparison["first"] == "gt" and comparison["cohens_d"] > 0 and comparison["paired_pairs"] == 16
    assert comparison["p_paired_t"] < 0.05 and comparison["scenarios"] == 4
    scenarios = analysis.tables["mos_scenarios"]
    assert set(scenarios["scenario"]) == {p.speaker_id for p in load_split("demo").pairs}
    assert set(scenarios["n"]) == {4 * 9}
    for name in ("mos.md", "mos.tex", "mos_scenarios.png", "mos_scenarios.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0


# ------------------------------------------------------------------------------------------ pages (Chromium)
def _post(url: str, payload: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(driver: object, script: str, timeout: float = 15.0) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


PLAY_ALL = "document.querySelectorAll('video.watch').forEach(v => { v.muted = true; v.playbackRate = 16; v.play(); })"
RATING_ENABLED = "const b = document.querySelector('#rating button.rate'); return Boolean(b) && !b.disabled"
CARD = "const s = window.studyState; return s.cards[s.index]"
SOURCES = "return [...document.querySelectorAll('video.watch')].map(v => v.getAttribute('src'))"


def _answer_card(driver: object) -> dict[str, object]:
    """Play every video of the shown card at 16x, wait for the gate to open, answer; returns the card shown."""
    card = driver.execute_script(CARD)
    index = driver.execute_script("return window.studyState.index")
    card["rendered"] = driver.execute_script(SOURCES)
    driver.execute_script(PLAY_ALL)
    _wait(driver, RATING_ENABLED)
    driver.execute_script("document.querySelector('#rating button.rate').click()")
    if card["practice"]:
        _wait(driver, "return !document.getElementById('next').hidden")
        assert driver.find_element("id", "answer-text").text.startswith(("Correct.", "Not quite."))
        driver.find_element("id", "next").click()
    _wait(driver, f"return window.studyState.index > {index} || !document.getElementById('done').hidden")
    return card


def _check_gate_before_watching(driver: object, store: ResponseStore) -> None:
    """Rating stays disabled while any video has not ended, and a forward seek is sent back."""
    _wait(driver, "return [...document.querySelectorAll('video.watch')].every(v => v.readyState >= 1)")
    assert driver.execute_script("return [...document.querySelectorAll('#rating button')].every(b => b.disabled)")
    driver.execute_script("document.querySelectorAll('video.watch').forEach(v => { v.currentTime = v.duration - 0.1 })")
    _wait(driver, "return window.studyState.watch.every(w => w.blocked > 0)")
    time.sleep(0.3)
    positions = driver.execute_script("return [...document.querySelectorAll('video.watch')].map(v => v.currentTime)")
    assert max(positions) < 0.5, positions
    # play all but the first video to the end: still locked
    driver.execute_script("const vs = [...document.querySelectorAll('video.watch')]; vs[0].pause(); "
                          "vs.slice(1).forEach(v => { v.muted = true; v.playbackRate = 16; v.play(); })")
    _wait(driver, "return [...document.querySelectorAll('video.watch')].slice(1).every(v => v.ended)")
    time.sleep(0.2)
    assert driver.execute_script("return [...document.querySelectorAll('#rating button')].every(b => b.disabled)")
    driver.execute_script("document.querySelector('#rating button.rate').click()")  # a disabled button does nothing
    time.sleep(0.2)
    assert store.responses().empty


def test_study_pages_gate_rating_on_watching_and_store_answers(demo_runs: dict[str, Path], tmp_path: Path) -> None:
    from browser import chromium, console_errors

    from idlora_bench.human.server import running

    study = build_ab_study(demo_runs["gt"], demo_runs["swap-speaker"], "demo", tmp_path / "ab", annotators_per_item=1,
                           pairs_per_slot=8, seed=1)
    store = ResponseStore(study, tmp_path / "ab" / "responses.sqlite")
    with running(tmp_path / "ab") as url, chromium() as driver:
        for private in ("study.json", "../study.json", "responses.sqlite"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{url}/{private}", timeout=10)
        driver.get(f"{url}/index.html?slot=0&annotator=worker-1")
        _wait(driver, "return !document.getElementById('intro').hidden")
        driver.find_element("id", "start").click()
        _wait(driver, "return !document.getElementById('card').hidden")
        _check_gate_before_watching(driver, store)
        shown = []
        while driver.execute_script("return document.getElementById('done').hidden"):
            shown.append(_answer_card(driver))
        code = driver.find_element("id", "code").text
        stored = store.responses()
        assert len(stored) == len(study.slots[0].item_ids) == len(shown)
        assert list(stored["item_id"]) == study.slots[0].item_ids and set(stored["annotator_id"]) == {"worker-1"}
        assert all(json.loads(w)[0]["ended"] for w in stored["watch_json"])
        from idlora_bench.human.responses import completion_code

        assert code == completion_code(study, "worker-1", 0)
        for card in shown:  # what the page rendered is what study.json records
            item = study.item(card["item_id"])
            expected = ([item.reference_media] if item.reference_media else []) + [c.media for c in item.candidates]
            assert card["rendered"] == expected
        status, body = _post(f"{url}/api/answer", {"session_id": stored["session_id"][0], "item_id": shown[1]["item_id"],
                                                   "answer": "B", "watched": _watched(study, shown[1]["item_id"])})
        assert status == 409 and "first answer stands" in body["error"]
        assert len(store.responses()) == len(shown)
        # one annotator id per browser session
        other = next(s for s in study.slots if s.chunk == 0 and s.group != 0)
        driver.get(f"{url}/index.html?slot={other.slot}&annotator=worker-2")
        _wait(driver, "return !document.getElementById('error').hidden")
        assert "belongs to worker worker-1" in driver.find_element("id", "error").text
        # a new session (window) for worker-2 on a slot of another Latin-square group: the same pair under another
        # question, with the methods in other positions
        first_source = {study.item(c["item_id"]).pair_id: study.item(c["item_id"]).candidates[0].source
                        for c in shown if study.item(c["item_id"]).kind == "test"}
        target = next(i for i in other.item_ids if study.item(i).kind == "test"
                      and study.item(i).candidates[0].source != first_source[study.item(i).pair_id])
        driver.switch_to.new_window("window")
        driver.get(f"{url}/index.html?slot={other.slot}&annotator=worker-2")
        _wait(driver, "return !document.getElementById('intro').hidden")
        driver.find_element("id", "start").click()
        _wait(driver, "return !document.getElementById('card').hidden")
        while driver.execute_script(CARD)["item_id"] != target:
            _answer_card(driver)
        item = study.item(target)
        rendered = driver.execute_script(SOURCES)
        assert rendered[-2:] == [c.media for c in item.candidates]
        shown_before = next(c for c in shown if study.item(c["item_id"]).pair_id == item.pair_id
                            and study.item(c["item_id"]).kind == "test")
        assert study.item(shown_before["item_id"]).question != item.question
        assert study.item(shown_before["item_id"]).candidates[0].source != item.candidates[0].source
        assert console_errors(driver) == []
