"""Leaderboard submissions end to end on the demo split: bench submit -> leaderboard validate -> rescore -> build.

The three anchors (gt, still-reference, swap-speaker) run with the cheap ``fake`` profile (tests/plugins), one
bundle each; one round trip uses the real ``offline`` profile (two of its metrics, real weights). Forged values are
flagged by pair and metric, tampered bundles list every problem, unsafe archives are refused without writing
outside the extraction folder, and the site is checked in headless Chromium.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import shutil
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from browser import chromium, console_errors, serve
from conftest import REPO_ROOT

from idlora_bench import runner
from idlora_bench.cli.console import err_console
from idlora_bench.cli.leaderboard import add_leaderboard_parser, add_submit_parser
from idlora_bench.core.errors import BenchError
from idlora_bench.leaderboard.archive import Limits
from idlora_bench.leaderboard.bundle import BUNDLE_MANIFEST, SELFTEST_FORMAT, list_files
from idlora_bench.leaderboard.rescore import Tolerance, rescore_bundle
from idlora_bench.leaderboard.validate import validate_bundle

ANCHORS = ("gt", "still-reference", "swap-speaker")
METHODS = (*ANCHORS, "partial")


def bench(argv: list[str]) -> int:
    """The ``submit`` and ``leaderboard`` commands as ``bench`` runs them (BenchError -> exit status 2)."""
    parser = argparse.ArgumentParser(prog="bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_submit_parser(sub)
    add_leaderboard_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BenchError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        return 2


def _text(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The anchors on the demo split with the fake profile, ``partial`` (videos made elsewhere, two pairs without
    one: failure rows) scored by bench score, and the fake profile's selftest report."""
    from idlora_bench.selftest import run_selftest

    root = tmp_path_factory.mktemp("runs")
    for method in ANCHORS:
        runner.run(method, "demo", profile="fake", out_dir=root / method, cache_path=root / "cache.sqlite")
    runner.run("swap-speaker", "demo", profile="fake", seed=1, out_dir=root / "swap-speaker-seed1",
               cache_path=root / "cache.sqlite")  # another impostor per pair: a real seed-to-seed spread
    outputs = root / "partial-videos"
    outputs.mkdir()
    for video in sorted((root / "gt" / "videos").glob("*.mp4"))[2:]:
        shutil.copyfile(video, outputs / video.name)
    runner.score_outputs(outputs, "demo", name="partial", profile="fake", out_dir=root / "partial",
                         cache_path=root / "cache.sqlite")
    run_selftest("fake", out_dir=root)
    return root


@pytest.fixture(scope="module")
def bundles(demo_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One .tar.gz bundle per method (swap-speaker with seeds 0 and 1), made by bench submit."""
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for method in METHODS:
        path = out / f"{method}.tar.gz"
        runs = [str(demo_runs / method)] + ([str(demo_runs / "swap-speaker-seed1")] if method == "swap-speaker" else [])
        assert bench(["submit", *runs, "-o", str(path), "--selftest",
                      str(demo_runs / "selftest-fake.json"), "--title", f"{method} anchor"]) == 0
        made[method] = path
    return made


@pytest.fixture(scope="module")
def site(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """validate + rescore (no flags) every bundle, then build the site with the re-scoring reports."""
    work = tmp_path_factory.mktemp("rescored")
    reports = []
    for method, path in bundles.items():
        assert bench(["leaderboard", "validate", str(path)]) == 0
        assert bench(["leaderboard", "rescore", str(path), "--out", str(work / method)]) == 0
        reports.append(work / method / "rescore-report.json")
    out = tmp_path_factory.mktemp("site") / "site"
    assert bench(["leaderboard", "build", *map(str, bundles.values()), "-o", str(out), "--n-boot", "1000",
                  "--rescore-reports", *map(str, reports)]) == 0
    return out


def folder_bundle(demo_runs: Path, tmp_path: Path, method: str = "gt", *extra: str) -> Path:
    """A folder bundle of one anchor run."""
    path = tmp_path / f"{method}-bundle"
    assert bench(["submit", str(demo_runs / method), "-o", str(path), "--selftest",
                  str(demo_runs / "selftest-fake.json"), *extra]) == 0
    return path


def restamp(folder: Path) -> None:
    """Re-list every file's sha256 and size in bundle.json (what a forger who edits files would do)."""
    manifest = json.loads((folder / BUNDLE_MANIFEST).read_text())
    manifest["files"] = {name: entry.model_dump() for name, entry in list_files(folder).items()}
    (folder / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2))


def _results_file(folder: Path) -> Path:
    [path] = folder.glob("runs/*/results-fake.jsonl")
    return path


# ------------------------------------------------------------------------------------------ round trip
def test_selftest_format_tag_is_the_selftest_packages() -> None:
    from idlora_bench.selftest import SELFTEST_FORMAT as selftest_format

    assert SELFTEST_FORMAT == selftest_format


def test_bundle_holds_results_manifests_selftest_pairs_sha_and_videos(bundles: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    from idlora_bench.data.splits import load_split

    report = validate_bundle(bundles["still-reference"], tmp_path / "x")
    assert report.ok, report.problems
    manifest = report.manifest
    assert manifest.profile == "fake" and manifest.selftest.included and manifest.selftest.passed
    assert [(s.name, s.pairs_sha256) for s in manifest.splits] == [("demo", load_split("demo").pairs_sha256)]
    [run] = report.runs
    assert run.manifest.method == "still-reference" and len(run.results) == 2 * 16
    names = set(manifest.files)
    assert {"selftest-fake.json", run.entry.results, run.entry.manifest} <= names
    videos = sorted(n for n in names if n.endswith(".mp4"))
    assert len(videos) == 16 and all(n.startswith(f"{run.entry.videos}/demo-") for n in videos)
    assert len([n for n in names if n.endswith(".json") and "/videos/" in n]) == 16  # generation records


def test_round_trip_builds_the_site(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert 'id="table-demo--fake"' in index and "demo · fake" in index
    for method in METHODS:
        assert f'href="demo--fake/{method}.html"' in index
        page = (site / "demo--fake" / f"{method}.html").read_text()
        assert page.count("<video") == 3 * 16 - 2 * (method == "partial") and "Per sample" in page
        assert (site / "demo--fake" / f"{method}-samples.csv").is_file()
    assert index.count("accepted") >= 4 and "(reported)" not in index  # re-scored; paper rows only for 'paper'
    for name in ("table.csv", "table.tex", "summary.csv", "comparisons.csv", "forest.svg", "distributions.svg",
                 "calibration.csv"):
        assert (site / "demo--fake" / name).stat().st_size > 0, name
    assert r"\toprule" in (site / "demo--fake" / "table.tex").read_text()
    # failures: counted in coverage, shown with their reason, first among the worst
    assert "14/16" in index
    # swap-speaker's two seeds: one value per pair (their mean), the spread shown
    assert index.count(" over 2 seeds") == 2 and '<td data-value="2">2</td>' in index
    swap = pd.read_csv(site / "demo--fake" / "table.csv").query("row == 'swap-speaker'")
    assert (swap["n_seeds"] == 2).all() and (swap["seed_sd"] > 0).all()
    samples = pd.read_csv(site / "demo--fake" / "partial-samples.csv")
    assert list(samples["pair_id"][:2]) == ["demo-00", "demo-01"] and list(samples["rank"][:2]) == [1, 2]
    assert samples.loc[0, "luma"].startswith("failed: missing_output")
    partial = (site / "demo--fake" / "partial.html").read_text()
    assert partial.count('<td class="failed" data-value="">missing_output: ') == 4
    assert partial.count("no video (not generated)") == 2
    assert "http://" not in index and "https://" not in index  # nothing from the network


def test_site_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with serve(site) as url, chromium() as driver:
        driver.get(f"{url}/index.html")
        table = driver.find_element(By.ID, "table-demo--fake")

        def order() -> list[tuple[str, float]]:
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
            return [(row.find_element(By.CSS_SELECTOR, "td.method").text,
                     float(row.find_element(By.CSS_SELECTOR, "td.cell").get_attribute("data-value"))) for row in rows]

        before = order()
        header = table.find_element(By.CSS_SELECTOR, 'th[data-metric="audio_rms"]')
        header.click()
        ascending = order()
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        descending = order()
        assert header.get_attribute("aria-sort") == "descending"
        assert [v for _, v in ascending] == sorted(v for _, v in before)
        assert [v for _, v in descending] == sorted((v for _, v in before), reverse=True)
        assert [m for m, _ in ascending] != [m for m, _ in descending]  # the order changed
        assert ascending[-1][0] == "still-reference"  # its audio_rms (ratio to the target) is the highest
        driver.save_screenshot(str(tmp_path / "index.png"))
        assert console_errors(driver) == []

        driver.get(f"{url}/demo--fake/still-reference.html")
        deadline = time.monotonic() + 20
        state = 0
        while time.monotonic() < deadline and state < 1:
            state = driver.execute_script("return document.querySelector('video').readyState")
            time.sleep(0.1)
        assert state >= 1  # metadata loaded: the served mp4 plays in the page
        first = driver.find_element(By.CSS_SELECTOR, "#samples tbody tr")
        assert "worst" in first.get_attribute("class")
        driver.save_screenshot(str(tmp_path / "method.png"))
        assert console_errors(driver) == []
    assert (tmp_path / "index.png").stat().st_size > 10_000 and (tmp_path / "method.png").stat().st_size > 10_000


def test_offline_profile_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real weights: gt and swap-speaker with two offline metrics -> bundle (no selftest, recorded) -> validate ->
    rescore with a fresh cache: every value recomputed within the tolerance."""
    for method in ("gt", "swap-speaker"):
        runner.run(method, "demo", profile="offline", out_dir=tmp_path / method, cache_path=tmp_path / "c.sqlite",
                   metrics=["speaker_similarity", "face_similarity"])
    bundle = tmp_path / "offline.tar.gz"
    assert bench(["submit", str(tmp_path / "gt"), str(tmp_path / "swap-speaker"), "-o", str(bundle),
                  "--no-selftest"]) == 0
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(bundle)]) == 0
    assert "no selftest report (submitted with --no-selftest" in _text(capsys)
    report = rescore_bundle(bundle)
    assert report.accepted and [(c.rows, c.agreeing) for c in report.runs] == [(32, 32), (32, 32)]
    assert report.runs[0].tolerances["speaker_similarity"] == (pytest.approx(1e-4), 1e-4)


# ------------------------------------------------------------------------------------------ forged and tampered
def test_forged_value_is_flagged_by_pair_and_metric(demo_runs: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "still-reference")
    results = _results_file(folder)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    victim = next(row for row in lines if row["pair_id"] == "demo-03" and row["metric"] == "luma")
    victim["value"] -= 0.5  # lower luma is better: a flattering forgery
    results.write_text("".join(json.dumps(row) + "\n" for row in lines))
    restamp(folder)
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(folder)]) == 0  # consistent bundle: only re-scoring can tell
    assert bench(["leaderboard", "rescore", str(folder), "--out", str(tmp_path / "work")]) == 1
    out = _text(capsys)
    assert "REJECTED" in out and "| demo-03 | luma |" in out and "value differs beyond the tolerance" in out
    report = json.loads((tmp_path / "work" / "rescore-report.json").read_text())
    assert not report["accepted"] and report["flagged_pairs"] == ["demo-03"]
    assert [(f["pair_id"], f["metric"]) for f in report["flags"]] == [("demo-03", "luma")]
    assert report["flags"][0]["difference"] == pytest.approx(0.5, abs=1e-9)
    # a difference inside the tolerance passes: 10^-(3+1) + 1e-4 x |value| for a 3-digit metric
    victim["value"] += 0.5 - 5e-5
    results.write_text("".join(json.dumps(row) + "\n" for row in lines))
    restamp(folder)
    assert rescore_bundle(folder).accepted
    assert not rescore_bundle(folder, tolerance=Tolerance(abs_tol=1e-6, rel_tol=0.0)).accepted
    # the site refuses a bundle whose re-scoring rejected it
    victim["value"] -= 0.5
    results.write_text("".join(json.dumps(row) + "\n" for row in lines))
    restamp(folder)
    rejected = rescore_bundle(folder, out_dir=tmp_path / "work2")
    assert not rejected.accepted
    capsys.readouterr()
    assert bench(["leaderboard", "build", str(folder), "-o", str(tmp_path / "site"), "--rescore-reports",
                  str(tmp_path / "work2" / "rescore-report.json")]) == 2
    assert "its re-scoring report rejects it" in _text(capsys) and not (tmp_path / "site").exists()


def test_claimed_failure_that_rescores_to_a_value_is_flagged(demo_runs: Path, tmp_path: Path) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "gt")
    results = _results_file(folder)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    hidden = next(row for row in lines if row["pair_id"] == "demo-10" and row["metric"] == "audio_rms")
    hidden.update(status="failed", value=None, reason="no_speech: hidden by the submitter")
    results.write_text("".join(json.dumps(row) + "\n" for row in lines))
    restamp(folder)
    report = rescore_bundle(folder)
    assert [(f.pair_id, f.metric, f.why) for f in report.flags] == [
        ("demo-10", "audio_rms", "claimed a failure, re-scoring gives a value")]


def test_tampered_bundle_lists_every_problem(demo_runs: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "gt")
    results = _results_file(folder)
    run = results.parent.name
    kept = [line for line in results.read_text().splitlines()
            if not ('"pair_id":"demo-05"' in line and '"metric":"luma"' in line)]
    results.write_text("\n".join(kept) + "\n")  # one row gone, bundle.json not updated
    (folder / "runs" / run / "videos" / "demo-02.mp4").unlink()
    (folder / "notes.txt").write_text("unlisted")
    manifest = json.loads((folder / BUNDLE_MANIFEST).read_text())
    manifest["splits"][0]["pairs_sha256"] = "0" * 64
    (folder / BUNDLE_MANIFEST).write_text(json.dumps(manifest))
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(folder)]) == 1
    out = _text(capsys)
    assert f"runs/{run}/results-fake.jsonl: sha256" in out and "does not match" in out
    assert f"runs/{run}/videos/demo-02.mp4: listed in bundle.json but missing" in out
    assert "notes.txt: not listed in bundle.json" in out
    assert "split 'demo': pairs sha256 0000000000000000000000000000000000000000000000000000000000000000 does not " \
           "match the registered pairs file" in out
    # every problem once: results sha256 and size, missing video, unlisted file, split sha256 (the rows are not
    # checked against a split whose pair list differs)
    assert "INVALID (5 problem(s))" in out


def test_rows_metrics_and_versions_are_checked(demo_runs: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "swap-speaker")
    results = _results_file(folder)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    lines = [row for row in lines if not (row["pair_id"] == "demo-05" and row["metric"] == "luma")]
    lines.append({**lines[0], "pair_id": "demo-99"})
    lines[1]["speaker_id"] = "spk-nobody"
    results.write_text("".join(json.dumps(row) + "\n" for row in lines) + "{not json\n")
    manifest_path = next(folder.glob("runs/*/manifest-fake.json"))
    run_manifest = json.loads(manifest_path.read_text())
    run_manifest["metrics"][1]["version"] = "0"
    manifest_path.write_text(json.dumps(run_manifest))
    restamp(folder)
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(folder)]) == 1
    out = _text(capsys)
    assert "results-fake.jsonl line 33: invalid JSON" in out
    results.write_text("".join(json.dumps(row) + "\n" for row in lines))
    restamp(folder)
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(folder)]) == 1
    out = _text(capsys)
    assert "metric 'luma': no row (ok or failed) for 1 pair(s): demo-05 of split 'demo'" in out
    assert "rows for pairs that split 'demo' does not have: 1 pair(s): demo-99" in out
    assert "speaker 'spk-nobody'" in out
    assert "metric 'luma.fake': version '0', the metric here has '1'" in out
    assert "selftest-fake.json: metric 'luma.fake' version '1', the runs used '0'" in out


def test_submit_needs_a_selftest_or_records_its_absence(demo_runs: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert bench(["submit", str(demo_runs / "gt"), "-o", str(tmp_path / "b.tar.gz")]) == 2
    assert "--no-selftest" in _text(capsys) and not (tmp_path / "b.tar.gz").exists()
    bad = tmp_path / "selftest-other.json"
    bad.write_text(json.dumps({"format": SELFTEST_FORMAT, "profile": "offline", "passed": True}))
    assert bench(["submit", str(demo_runs / "gt"), "-o", str(tmp_path / "b.tar.gz"), "--selftest", str(bad)]) == 2
    assert "a selftest of profile 'offline'; the runs use 'fake'" in _text(capsys)
    assert bench(["submit", str(demo_runs / "gt"), "-o", str(tmp_path / "b.tar.gz"), "--no-selftest",
                  "--no-videos"]) == 0
    report = validate_bundle(tmp_path / "b.tar.gz", tmp_path / "x")
    assert report.ok and not report.manifest.selftest.included and not report.manifest.videos_included
    assert any("no selftest report" in w for w in report.warnings)
    with pytest.raises(BenchError, match="submitted without videos"):
        rescore_bundle(tmp_path / "b.tar.gz")


def test_submit_refuses_a_video_changed_after_scoring(demo_runs: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(demo_runs / "gt", run)
    (run / "videos" / "demo-04.mp4").write_bytes(b"not the scored video")
    capsys.readouterr()
    assert bench(["submit", str(run), "-o", str(tmp_path / "b.tar.gz"), "--no-selftest"]) == 2
    out = _text(capsys)
    assert "pair demo-04: no video with the scored sha256" in out and "changed after scoring" in out
    assert not (tmp_path / "b.tar.gz").exists() and not list(tmp_path.glob(".bundle-*"))


# ------------------------------------------------------------------------------------------ unsafe archives
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


UNSAFE = {
    "dotdot": ([_file("bundle.json", b"{}"), _file("../evil", b"escaped")], "'..' in the path"),
    "nested-dotdot": ([_file("runs/../../evil", b"escaped")], "'..' in the path"),
    "absolute": ([_file("/tmp/idlora-evil-absolute", b"escaped")], "absolute path"),
    "symlink": ([_special("videos", tarfile.SYMTYPE, ".."), _file("videos/evil", b"escaped")],
                "symbolic link to '..'"),
    "hardlink": ([_file("bundle.json", b"{}"), _special("evil", tarfile.LNKTYPE, "/etc/passwd")], "hard link"),
    "device": ([_special("dev", tarfile.CHRTYPE)], "device file"),
    "fifo": ([_special("pipe", tarfile.FIFOTYPE)], "FIFO"),
    "oversize": ([_file("bundle.json", b"x" * 5000)], "over the limit of 4096 bytes per file"),
    "duplicate": ([_file("bundle.json", b"{}"), _file("./bundle.json", b"{}")], "appears twice"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_without_writing_outside(case: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    members, message = UNSAFE[case]
    archive = _tar(tmp_path / f"{case}.tar.gz", members)
    work = tmp_path / "work"
    work.mkdir()
    report = validate_bundle(archive, work / "bundle", limits=Limits(member_bytes=4096))
    assert not report.ok and any(message in problem for problem in report.problems), report.problems
    assert list(work.iterdir()) == []  # nothing extracted, not even the target folder
    assert not Path("/tmp/idlora-evil-absolute").exists() and not (tmp_path / "evil").exists()
    capsys.readouterr()
    assert bench(["leaderboard", "validate", str(archive), "--max-file-mb", str(4096 / (1 << 20))]) == 1
    assert message in _text(capsys)


def test_folder_bundle_with_a_link_is_refused(demo_runs: Path, tmp_path: Path) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "gt")
    (folder / "runs" / "link").symlink_to("/etc")
    report = validate_bundle(folder, tmp_path / "unused")
    assert report.problems == ["runs/link: symbolic link (links are not allowed in a bundle)"]


def test_not_a_tar_and_unknown_suffix_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "b.tar.gz"
    fake.write_bytes(b"not gzip at all")
    [problem] = validate_bundle(fake, tmp_path / "x").problems
    assert "not a readable gzip-compressed tar archive" in problem
    other = tmp_path / "b.zip"
    other.write_bytes(b"PK")
    assert validate_bundle(other, tmp_path / "y").problems == [f"{other}: a bundle file must be a .tar.gz or .tgz "
                                                                "archive"]


def test_the_bench_command_has_submit_and_leaderboard() -> None:
    """The lead wires the commands into ``bench`` (idlora_bench/cli/__init__.py build_parser)."""
    from idlora_bench.cli import build_parser
    from idlora_bench.cli.leaderboard import cmd_build, cmd_rescore, cmd_submit, cmd_validate

    parser = build_parser()
    assert parser.parse_args(["submit", "r", "-o", "b.tar.gz", "--no-selftest"]).func is cmd_submit
    assert parser.parse_args(["leaderboard", "validate", "b.tar.gz"]).func is cmd_validate
    assert parser.parse_args(["leaderboard", "rescore", "b.tar.gz"]).func is cmd_rescore
    assert parser.parse_args(["leaderboard", "build", "b.tar.gz", "-o", "site"]).func is cmd_build


def test_ci_workflow_validates_then_rescores_with_commands_that_exist() -> None:
    workflow = yaml.safe_load((REPO_ROOT / "leaderboard" / "workflows" / "submission.yml").read_text())
    parser = argparse.ArgumentParser(prog="bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_submit_parser(sub)
    add_leaderboard_parser(sub)
    used: dict[str, list[str]] = {}
    for job, spec in workflow["jobs"].items():
        for step in spec["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if "bin/bench leaderboard" not in line:
                    continue
                words = shlex.split(line.split("bin/bench", 1)[1].split("||")[0])
                parser.parse_args(words)  # exits (SystemExit) on an unknown action or option
                used.setdefault(job, []).append(words[1])
    assert used["check"] == ["validate", "rescore"] and used["site"] == ["rescore", "build"]
    assert workflow["jobs"]["check"]["if"] == "github.event_name == 'pull_request'"


def test_reported_rows_only_beside_the_paper_profile(bundles: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from idlora_bench.leaderboard import site as site_module
    from idlora_bench.leaderboard.site import SiteOptions, build_section
    from idlora_bench.leaderboard.site_pages import leaderboard_table
    from idlora_bench.leaderboard.validate import BundleRunData

    printed = pd.DataFrame([{"table": "table1", "split": "demo", "method": "ID-LoRA", "metric": "luma", "value": 90.0},
                            {"table": "table1", "split": "other", "method": "ID-LoRA", "metric": "luma", "value": 1.0}])
    monkeypatch.setattr(site_module, "load_reported", lambda name: printed)
    entries = []
    for method in ("gt", "still-reference"):
        report = validate_bundle(bundles[method], tmp_path / method)
        assert report.ok, report.problems
        [run] = report.runs
        entries.append((None, run))
    options = SiteOptions(n_boot=200, plots=False)
    measured = build_section("demo", "fake", entries, options)
    assert all(row.kind != "reported" for row in measured.table.blocks[0].rows)
    as_paper = [(s, BundleRunData(run.entry, run.manifest.model_copy(update={"profile": "paper"}),
                                  run.results.assign(profile="paper"), run.videos_dir)) for s, run in entries]
    section = build_section("demo", "paper", as_paper, options)
    rows = {row.label: row for row in section.table.blocks[0].rows}
    reported = rows["ID-LoRA (reported)"]
    assert reported.kind == "reported" and reported.cells["luma"].value == 90.0 and reported.cells["luma"].rank is None
    assert "audio_rms" not in reported.cells  # only what the paper printed
    html = leaderboard_table(section, {})
    assert '<tr class="reported">' in html and "<span class=badge>reported</span>" in html
    assert "reported, not measured here" in html


def test_run_paths_outside_their_folder_are_refused_unread(demo_runs: Path, tmp_path: Path) -> None:
    folder = folder_bundle(demo_runs, tmp_path, "gt")
    manifest = json.loads((folder / BUNDLE_MANIFEST).read_text())
    run = manifest["runs"][0]["name"]
    manifest["runs"][0]["manifest"] = f"runs/{run}/../../../../etc/passwd"
    manifest["selftest"]["path"] = "../selftest-fake.json"
    (folder / BUNDLE_MANIFEST).write_text(json.dumps(manifest))
    problems = validate_bundle(folder, tmp_path / "unused").problems
    assert f"bundle.json: run '{run}': its manifest 'runs/{run}/../../../../etc/passwd' is not under runs/{run}/ " \
           "('..' in the path (would point outside the bundle))" in problems
    assert "bundle.json: selftest included but its file '../selftest-fake.json' is not a listed file of the " \
           "bundle" in problems
