"""Model store: verified pulls (resume over HTTP range on loopback), Hugging Face pulls at a pinned revision,
imports from an air-gapped folder, and refusals of wrong checksums."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from idlora_bench.checkpoints import model_store
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import WeightsError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from ``directory`` and honours ``Range: bytes=N-``; counts bytes sent."""

    sent: list[int] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if (header := self.headers.get("Range")) and header.startswith("bytes="):
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        _RangeHandler.sent.append(len(body))  # before writing: the client may finish before this thread resumes
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.sent = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


def _card(url: str, sha: str = SHA, member: str | None = None, file: str = "weights.bin") -> WeightsFile:
    return WeightsFile(model="toy", file=file, source=f"url:{url}", sha256=sha, licence="CC0", archive_member=member)


def test_pull_downloads_verifies_and_places(server: tuple[str, Path]) -> None:
    base, served = server
    (served / "w.bin").write_bytes(PAYLOAD)
    card = _card(f"{base}/w.bin")
    assert card.status() == "missing"
    [result] = model_store.pull([card])
    assert result.status == "downloaded" and card.verify().read_bytes() == PAYLOAD
    assert model_store.pull([card])[0].status == "present"


def test_pull_resumes_a_partial_download(server: tuple[str, Path], tmp_path: Path) -> None:
    base, served = server
    (served / "w.bin").write_bytes(PAYLOAD)
    downloads = tmp_path / "store" / "_downloads"
    downloads.mkdir(parents=True)
    (downloads / "w.bin.part").write_bytes(PAYLOAD[:300_000])
    [result] = model_store.pull([_card(f"{base}/w.bin")])
    assert result.status == "downloaded"
    assert _RangeHandler.sent == [len(PAYLOAD) - 300_000]  # only the rest was sent


def test_wrong_checksum_never_lands(server: tuple[str, Path]) -> None:
    base, served = server
    (served / "w.bin").write_bytes(PAYLOAD[:-1] + b"\x00")
    card = _card(f"{base}/w.bin")
    [result] = model_store.pull([card])
    assert result.status == "failed" and "sha256" in result.message and "nothing was installed" in result.message
    assert not card.path().exists()
    with pytest.raises(WeightsError, match="bench models pull toy"):
        card.verify()


def test_zip_member_is_extracted_and_verified(server: tuple[str, Path]) -> None:
    base, served = server
    with zipfile.ZipFile(served / "pack.zip", "w") as archive:
        archive.writestr("pack/model.onnx", PAYLOAD)
        archive.writestr("pack/other.onnx", b"other")
    card = _card(f"{base}/pack.zip", member="pack/model.onnx", file="model.onnx")
    other = _card(f"{base}/pack.zip", sha=hashlib.sha256(b"other").hexdigest(), member="pack/other.onnx",
                  file="other.onnx")
    assert [r.status for r in model_store.pull([card, other])] == ["downloaded", "downloaded"]
    assert card.verify().read_bytes() == PAYLOAD and other.verify().read_bytes() == b"other"
    assert len(_RangeHandler.sent) == 1  # the archive was downloaded once for both members


def test_import_matches_files_by_checksum_not_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    copy = tmp_path / "usb" / "deep"
    copy.mkdir(parents=True)
    (copy / "renamed.bin").write_bytes(PAYLOAD)
    (copy / "unrelated.txt").write_text("x")
    with zipfile.ZipFile(copy / "pack.zip", "w") as archive:
        archive.writestr("pack/model.onnx", b"onnx bytes")
    plain = _card("http://unused/w.bin")
    zipped = _card("http://unused/pack.zip", sha=hashlib.sha256(b"onnx bytes").hexdigest(),
                   member="pack/model.onnx", file="model.onnx")
    never = _card("http://unused/x.bin", sha="1" * 64, file="x.bin")
    outcome = model_store.import_dir(tmp_path / "usb", [plain, zipped, never])
    assert sorted(outcome.imported) == ["toy/model.onnx", "toy/weights.bin"]
    assert outcome.missing == ["toy/x.bin"]
    assert plain.status() == "ok" and zipped.status() == "ok" and (copy / "renamed.bin").exists()


def test_hugging_face_pull_uses_the_pinned_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    calls = []

    def fake_download(repo_id: str, filename: str, *, revision: str, local_dir: str) -> str:
        calls.append((repo_id, filename, revision))
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PAYLOAD)
        return str(path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    card = WeightsFile(model="clap", file="model.safetensors", source="hf:org/repo@0123abcd:model.safetensors",
                       sha256=SHA, licence="apache-2.0")
    assert model_store.pull([card])[0].status == "downloaded"
    assert calls == [("org/repo", "model.safetensors", "0123abcd")]
    assert card.verify() == tmp_path / "store" / "clap" / "model.safetensors"


def test_pypi_weights_are_not_downloadable_and_say_how_to_fix() -> None:
    card = WeightsFile("x", "y.bin", "pypi:resemblyzer==0.1.4:nope.bin", SHA, "none")
    [result] = model_store.pull([card])
    assert result.status == "not downloadable" and "--force-reinstall 'resemblyzer==0.1.4'" in result.message


def _hub_card() -> WeightsFile:
    return WeightsFile(model="clap", file="config.json", source="hf:org/repo@0123abcd:config.json",
                       sha256=None, licence="apache-2.0")


def _fake_hub(monkeypatch: pytest.MonkeyPatch, payload: bytes, etag: str) -> None:
    import huggingface_hub

    def fake_download(repo_id: str, filename: str, *, revision: str, local_dir: str) -> str:
        path = Path(local_dir) / filename
        path.write_bytes(payload)
        return str(path)

    class Meta:
        pass

    meta = Meta()
    meta.etag = etag  # type: ignore[attr-defined]
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url: meta)


def test_revision_pinned_file_is_checked_against_hub_blob_sha1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    payload = b'{"hidden_size": 8}'
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    card = _hub_card()
    with pytest.raises(WeightsError, match="missing"):
        card.verify()
    _fake_hub(monkeypatch, payload, f'"{git_sha1}"')
    assert model_store.pull([card])[0].status == "downloaded"
    assert card.expected_sha256() == hashlib.sha256(payload).hexdigest()  # recorded at pull
    card.path().write_bytes(payload + b" ")  # tampered afterwards
    with pytest.raises(WeightsError, match="has sha256"):
        card.verify()


def test_revision_pinned_file_with_wrong_hub_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    _fake_hub(monkeypatch, b"weights", "f" * 64)
    card = _hub_card()
    [result] = model_store.pull([card])
    assert result.status == "failed" and "does not match the hub's checksum" in result.message
    assert not card.path().exists()


def test_revision_pinned_file_imports_from_a_hub_cache_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(tmp_path / "store"))
    snapshot = tmp_path / "hf" / "models--org--repo" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    card = _hub_card()
    outcome = model_store.import_dir(tmp_path / "hf", [card])
    assert outcome.imported == ["clap/config.json"] and outcome.missing == []
    assert card.status() == "ok"
