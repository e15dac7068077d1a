"""Paper profile lip sync (SyncNet v2 LSE-D / LSE-C).

- Equivalence with the installed syncnet_python package (0.2.3, a port of joonson/syncnet_python) on the
  same seeded random weights: S3FD detections, tracking, crops, PySceneDetect shots, and the SyncNet
  evaluation (``SyncNetInstance.evaluate``, run unmodified on files it reads itself: PNG-coded frames and a
  16-bit WAV, so no ffmpeg binary is needed). Max abs differences are asserted below.
- Known answers: embedding sequences whose audio is the video shifted by ``k`` frames.
- Checkpoints: random weights saved like the released files (legacy torch pickle of a plain state dict,
  no BatchNorm ``num_batches_tracked``) load strictly through the metric's real loading code; missing /
  extra keys and a wrong sha256 are refused.
- Failures: ``too_short`` and ``no_face_track``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_cache_round_trip, constructed_media, make_pair
from scipy.io import wavfile
from tiny_weights import (
    random_s3fd_state,
    random_syncnet_state,
    save_like_release,
    syncnet_card,
    use_random_syncnet_cards,
    write_random_syncnet_store,
)

from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.lse_c_syncnet import LipSyncConfidenceSyncNet
from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet
from idlora_bench.models import syncnet as sn

try:  # the paper extra: syncnet-python (+ scenedetect, python-speech-features); the metric needs it too
    from syncnet_python.detectors.s3fd import S3FD
    from syncnet_python.syncnet_pipeline import PipelineConfig, SyncNetPipeline
    from syncnet_python.SyncNetInstance import SyncNetInstance
    from syncnet_python.SyncNetModel import S as UpstreamSyncNet
except ImportError:  # only the known-answer tests run
    UpstreamSyncNet = None
needs_syncnet_python = pytest.mark.skipif(UpstreamSyncNet is None, reason="syncnet-python is not installed")

LSE_TOLERANCE = 1e-5  # max abs difference allowed between our LSE-D / LSE-C and syncnet_python's


# ----------------------------------------------------------------------------------------- helpers
def upstream_syncnet(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = UpstreamSyncNet()
    net.load_state_dict(state)  # the package's own (strict) loading; BN counters are filled in
    return net.eval()


def write_png_frames(folder: Path, frames_bgr: np.ndarray) -> list[str]:
    """Frames as lossless PNG data in ``*.jpg`` files (upstream globs *.jpg; cv2.imread sniffs the format)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames_bgr):
        path = folder / f"{index + 1:06d}.jpg"
        path.write_bytes(cv2.imencode(".png", np.ascontiguousarray(frame))[1].tobytes())
        paths.append(str(path))
    return paths


def upstream_evaluate(net: torch.nn.Module, crops_bgr: np.ndarray, pcm16: np.ndarray, folder: Path,
                      monkeypatch: pytest.MonkeyPatch | None = None) -> tuple:
    """syncnet_python's ``SyncNetInstance.evaluate`` on crops + audio (it reads the files itself).

    Returns ``(offset, conf, minval, distances)``; ``distances`` ``(N, 31)`` is what its ``calc_pdist``
    returned (captured when ``monkeypatch`` is given, else None).
    """
    write_png_frames(folder, crops_bgr)
    wavfile.write(folder / "audio.wav", 16_000, pcm16)
    opt = types.SimpleNamespace(tmp_dir=str(folder), batch_size=20, vshift=15)
    captured: list[torch.Tensor] = []
    if monkeypatch is not None:
        instance_module = sys.modules["syncnet_python.SyncNetInstance"]  # the package attribute is the class
        original = instance_module.calc_pdist
        def capture(*args, **kwargs):
            captured.extend(original(*args, **kwargs))
            return captured

        monkeypatch.setattr(instance_module, "calc_pdist", capture)
    offset, conf, minval = SyncNetInstance(net=net, device="cpu").evaluate(opt)
    return offset, conf, minval, torch.stack(captured).numpy() if captured else None


def _media(frames: np.ndarray, fps: float, audio: np.ndarray, tag: str) -> DecodedMedia:
    """16 kHz media named and hashed after ``tag`` (distinct cache keys per constructed clip)."""
    return constructed_media(frames, audio, 16_000, fps=fps, name=f"{tag}.mp4",
                             sha=hashlib.sha256(tag.encode()).hexdigest())


@pytest.fixture(scope="module")
def syncnet_state() -> OrderedDict[str, torch.Tensor]:
    return random_syncnet_state(0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, syncnet_state) -> Path:
    """A model store holding random weights in the released format (blind S3FD: no detections)."""
    return write_random_syncnet_store(tmp_path_factory.mktemp("models"), syncnet_state, blind=True)


@pytest.fixture
def random_cards(store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_random_syncnet_cards(store, monkeypatch)


# ----------------------------------------------------------------------------------------- equivalence
@needs_syncnet_python
def test_network_matches_syncnet_python_keys_shapes_and_outputs(syncnet_state) -> None:
    ours = sn.SyncNetV2()
    theirs = UpstreamSyncNet()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    sn.load_strict(ours, syncnet_state, source="test", what="SyncNet", optional_suffixes=(".num_batches_tracked",))
    theirs = upstream_syncnet(syncnet_state)
    ours.eval()
    generator = torch.Generator().manual_seed(3)
    lips = torch.rand(3, 3, 5, 224, 224, generator=generator) * 255
    mfcc = torch.randn(3, 1, 13, 20, generator=generator) * 10
    with torch.no_grad():
        assert torch.equal(ours.forward_lip(lips), theirs.forward_lip(lips))
        assert torch.equal(ours.forward_aud(mfcc), theirs.forward_aud(mfcc))


@needs_syncnet_python
def test_lse_equals_syncnet_python_evaluate(syncnet_state, tmp_path: Path, monkeypatch) -> None:
    """Same crops + audio + random weights: distances, LSE-D, LSE-C, offset equal to SyncNetInstance.evaluate's.

    Measured on this machine: max abs diff 0.0 for the (19, 31) distance matrix, LSE-D and LSE-C (values
    ~15 and ~0.1, float32), same offset; the assertion allows LSE_TOLERANCE = 1e-5.
    """
    rng = np.random.default_rng(7)
    crops_bgr = rng.integers(0, 256, (24, 224, 224, 3), dtype=np.uint8)
    pcm = sn.to_pcm16(0.3 * rng.standard_normal(24 * 640 + 123))  # audio a bit longer than the video
    offset, conf, minval, distances = upstream_evaluate(
        upstream_syncnet(syncnet_state), crops_bgr, pcm, tmp_path / "crop", monkeypatch
    )

    net = sn.SyncNetV2()
    sn.load_strict(net, syncnet_state, source="test", what="SyncNet", optional_suffixes=(".num_batches_tracked",))
    video, audio = sn.embed_windows(net.eval(), crops_bgr, pcm)
    ours = sn.sync_scores(video, audio, vshift=15)
    assert distances.shape == (19, 31)
    assert np.max(np.abs(sn.offset_distances(video, audio, 15).numpy() - distances)) <= LSE_TOLERANCE
    assert ours.num_windows == 24 - 5  # min(24 frames, floor(N / 640) = 24) - 5, as upstream
    assert abs(ours.lse_d - minval) <= LSE_TOLERANCE, (ours.lse_d, minval)
    assert abs(ours.lse_c - conf) <= LSE_TOLERANCE, (ours.lse_c, conf)
    assert ours.offset == offset
    assert ours.lse_c > 1e-3  # a real spread over offsets, not a degenerate flat curve


@needs_syncnet_python
def test_mfcc_is_upstreams_on_int16_pcm() -> None:
    import python_speech_features

    pcm = sn.to_pcm16(0.2 * np.sin(np.arange(16_000) * 2 * np.pi * 220 / 16_000))
    ours = sn.mfcc_features(pcm)
    assert ours.shape == (13, 99)  # 1 s -> 99 frames of 25 ms every 10 ms: 4 per video frame
    reference = np.stack([np.array(row) for row in zip(*python_speech_features.mfcc(pcm, 16_000))])
    assert np.array_equal(ours, reference.astype(np.float32))
    assert sn.to_pcm16(np.array([1.0, -1.0, 0.5, 1e-5]).astype(np.float32)).tolist() == [32767, -32768, 16384, 0]


@needs_syncnet_python
def test_face_detector_matches_syncnet_python_s3fd() -> None:
    torch.manual_seed(0)
    net = sn.new_s3fd("cpu").eval()
    config = sn.SyncNetConfig(facedet_conf=0.5)  # random weights: nothing scores above 0.9
    image = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    ours = sn.FaceDetector(net, config).detect(image)
    theirs = S3FD(net, device="cpu").detect_faces(image, conf_th=0.5, scales=[0.25])
    assert len(ours) >= 3
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)  # max abs diff 0


@needs_syncnet_python
def test_tracking_matches_syncnet_python() -> None:
    rng = np.random.default_rng(5)
    detections = []
    for frame in range(90):
        faces = []
        if frame % 17 != 3:  # some missed frames (interpolated)
            x = 40 + frame * 0.8 if frame < 60 else 600.0  # at frame 60 the face jumps: a new track
            faces.append({"frame": frame, "bbox": [x, 30.0, x + 120 + rng.normal(), 160.0], "conf": 0.99})
        if 20 <= frame < 60:  # a second, smaller face (listed after the first: see the next test)
            faces.append({"frame": frame, "bbox": [400.0, 50.0, 470.0, 130.0 + rng.normal()], "conf": 0.95})
        if frame == 75:  # a lone detection far away (a track of one face, dropped)
            faces.append({"frame": frame, "bbox": [900.0, 300.0, 1020.0, 420.0], "conf": 0.97})
        detections.append(faces)
    for min_track, min_face in ((20, 100), (20, 60), (40, 60)):
        config = sn.SyncNetConfig(min_track_frames=min_track, min_face_size_px=min_face)
        ours = sn.track_faces(detections, config)
        upstream = SyncNetPipeline.__new__(SyncNetPipeline)
        upstream.cfg = PipelineConfig(min_track=min_track, min_face_size=min_face)
        theirs = upstream._track([list(faces) for faces in detections])
        assert len(ours) == len(theirs) >= 1
        for a, b in zip(ours, theirs):
            assert np.array_equal(a.frames, b["frame"]) and np.array_equal(a.boxes, b["bbox"])
    found = sn.track_faces(detections, sn.SyncNetConfig(min_track_frames=20, min_face_size_px=60))
    assert [(t.start, t.end) for t in found] == [(0, 59), (20, 59), (60, 89)]
    found = sn.track_faces(detections, sn.SyncNetConfig(min_track_frames=20))  # the second face is too small
    assert [(t.start, t.end) for t in found] == [(0, 59), (60, 89)]


@needs_syncnet_python
def test_tracking_follows_joonson_where_the_package_differs() -> None:
    """A face that does not match the track no longer stops the walk through its frame.

    joonson/syncnet_python's ``track_shot`` skips a non-matching face and still looks at the next face of
    the same frame; syncnet-python 0.2.3's ``_track`` breaks out of the frame at the first non-matching
    face, so the matching face after it is lost (and interpolated). We pin joonson's behaviour.
    """
    detections = []
    for frame in range(30):
        main = {"frame": frame, "bbox": [10.0 + frame, 10.0, 130.0 + frame + (5.0 if frame == 12 else 0.0), 130.0]}
        stranger = {"frame": frame, "bbox": [500.0, 10.0, 620.0, 130.0]}
        detections.append([stranger, main] if frame == 12 else [main])
    (track,) = sn.track_faces(detections, sn.SyncNetConfig(min_track_frames=20))
    assert track.boxes[12].tolist() == [22.0, 10.0, 147.0, 130.0]  # the real detection of frame 12
    upstream = SyncNetPipeline.__new__(SyncNetPipeline)
    upstream.cfg = PipelineConfig(min_track=20)
    (theirs,) = upstream._track([list(faces) for faces in detections])
    assert theirs["bbox"][12].tolist() == [22.0, 10.0, 142.0, 130.0]  # the package interpolated 11 and 13


def _capture_upstream_crops(monkeypatch, track: dict, frame_paths: list[str], folder: Path) -> np.ndarray:
    """syncnet_python's ``_crop`` with its video writer and ffmpeg calls replaced by a frame capture."""
    written: list[np.ndarray] = []

    class CaptureWriter:
        def __init__(self, path, *args):
            self.path = path

        def write(self, frame):
            written.append(frame.copy())

        def release(self):
            Path(self.path).touch()

    monkeypatch.setattr(cv2, "VideoWriter", CaptureWriter)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    upstream = SyncNetPipeline.__new__(SyncNetPipeline)
    upstream.cfg = PipelineConfig()
    upstream._crop(track, frame_paths, str(folder / "audio.wav"), folder / "cropped" / "00000")
    return np.stack(written)


@needs_syncnet_python
def test_pipeline_end_to_end_equals_syncnet_python(syncnet_state, tmp_path: Path, monkeypatch) -> None:
    """Frames + audio + detections -> tracks, crops, LSE: ours vs the package's _track, _crop, evaluate."""
    rng = np.random.default_rng(11)
    num_frames = 40
    background = rng.integers(60, 120, (200, 240, 3), dtype=np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    frames[:, 40:170, 50:190] = rng.integers(0, 256, (num_frames, 130, 140, 3), dtype=np.uint8)  # a busy "face"
    audio = 0.2 * rng.standard_normal(26 * 640 + 300).astype(np.float32)  # shorter: 26 - 5 = 21 windows
    boxes = {i: np.array([[60 + i * 0.7, 35 + np.sin(i) * 3, 175 + i * 0.7, 165.0, 0.99]]) for i in range(num_frames)}
    boxes[10] = np.empty((0, 5))  # a missed detection, interpolated by the tracker

    config = sn.SyncNetConfig(min_track_frames=30)
    pipeline = sn.SyncNetLSE(sn.SyncNetV2(), sn.new_s3fd("cpu"), config)
    sn.load_strict(pipeline.syncnet, syncnet_state, source="t", what="S", optional_suffixes=(".num_batches_tracked",))
    pipeline.syncnet.eval()
    calls = iter(range(num_frames))
    monkeypatch.setattr(pipeline.detector, "detect", lambda frame: boxes[next(calls)])
    result = pipeline.score(frames, 25.0, audio)
    assert result.num_shots == 1 and len(result.tracks) == 1 and result.best.scores.num_windows == 21

    # syncnet_python, step by step on the same inputs
    detections = [
        [{"frame": i, "bbox": b[:4].tolist(), "conf": float(b[4])} for b in boxes[i]] for i in range(num_frames)
    ]
    upstream = SyncNetPipeline.__new__(SyncNetPipeline)
    upstream.cfg = PipelineConfig(min_track=30)
    (track,) = upstream._track([list(d) for d in detections])
    assert (result.best.start, result.best.end) == (track["frame"][0], track["frame"][-1]) == (0, num_frames - 1)
    frame_paths = write_png_frames(tmp_path / "frames", frames[..., ::-1])
    upstream_crops = _capture_upstream_crops(monkeypatch, track, frame_paths, tmp_path)
    our_crops = sn.crop_track(frames, sn.track_faces(detections, config)[0], config)[..., ::-1]
    assert np.array_equal(our_crops, upstream_crops)  # max abs diff 0 (uint8)
    pcm = sn.to_pcm16(audio)[track["frame"][0] * 640 : (track["frame"][-1] + 1) * 640]
    offset, conf, minval, _ = upstream_evaluate(upstream_syncnet(syncnet_state), upstream_crops, pcm, tmp_path / "eval")
    assert abs(result.best.scores.lse_d - minval) <= LSE_TOLERANCE
    assert abs(result.best.scores.lse_c - conf) <= LSE_TOLERANCE
    assert result.best.scores.offset == offset


@needs_syncnet_python
def test_shots_equal_pyscenedetect_scene_manager(tmp_path: Path) -> None:
    from scenedetect import SceneManager, open_video
    from scenedetect.detectors import ContentDetector

    rng = np.random.default_rng(0)
    dark = rng.integers(0, 80, (120, 320, 3), dtype=np.uint8)
    bright = rng.integers(150, 256, (120, 320, 3), dtype=np.uint8)
    frames = np.stack([dark] * 30 + [bright] * 25 + [dark] * 20)
    ours = sn.detect_shots(frames)
    assert ours == [(0, 30), (30, 55), (55, 75)]
    path = tmp_path / "cuts.avi"  # MJPEG through OpenCV's own encoder (no ffmpeg binary)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 120))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(open_video(str(path), backend="opencv"))
    assert [(s.frame_num, e.frame_num) for s, e in manager.get_scene_list()] == ours
    assert sn.detect_shots(np.repeat(dark[None], 40, axis=0)) == [(0, 40)]


# ----------------------------------------------------------------------------------------- known answers
def _hand_mean_distances(video: np.ndarray, audio: np.ndarray, vshift: int) -> np.ndarray:
    """Independent float64 loops: mean_i ||v_i - a_{i+j-vshift} + 1e-6|| with zeros outside the audio."""
    count, dim = video.shape
    out = []
    for j in range(2 * vshift + 1):
        total = 0.0
        for i in range(count):
            k = i + j - vshift
            other = audio[k] if 0 <= k < count else np.zeros(dim)
            total += float(np.sqrt(np.sum((video[i] - other + 1e-6) ** 2)))
        out.append(total / count)
    return np.array(out)


@pytest.mark.parametrize("true_offset", [-15, -4, 0, 3, 15])
def test_known_offset_from_shifted_embeddings(true_offset: int) -> None:
    """audio_{i - k} = video_i (audio leads video by k frames) -> offset k; LSE-D and LSE-C by hand."""
    rng = np.random.default_rng(100 + true_offset)
    count, dim, vshift = 40, 64, 15
    base = rng.standard_normal((count + 2 * vshift, dim))
    video = base[vshift : vshift + count]
    audio = base[vshift + true_offset : vshift + true_offset + count]  # audio[i] = video[i + k]
    scores = sn.sync_scores(torch.tensor(video, dtype=torch.float32), torch.tensor(audio, dtype=torch.float32), vshift)
    hand = _hand_mean_distances(video, audio, vshift)
    assert scores.offset == true_offset
    assert int(vshift - np.argmin(hand)) == true_offset
    assert np.max(np.abs(scores.mean_distances - hand)) < 1e-4
    # at the true offset only the |k| windows whose partner falls outside the audio (zero padding) count
    edge = range(count + true_offset, count) if true_offset < 0 else range(true_offset)
    matched = (count - abs(true_offset)) * 1e-6 * np.sqrt(dim)  # ||v - v + eps|| for the in-range windows
    expected_d = (sum(np.linalg.norm(video[i] + 1e-6) for i in edge) + matched) / count
    assert scores.lse_d == pytest.approx(expected_d, rel=1e-5, abs=1e-5)
    assert scores.lse_c == pytest.approx(np.sort(hand)[vshift] - hand.min(), rel=1e-5)  # median of 31 - min
    if true_offset == 0:
        assert scores.lse_d < 1e-4  # identical sequences: distance ~ 0


def test_frame_rate_resampling_and_window_count() -> None:
    indices = sn.resample_frame_indices(126, 30.0, 25)  # 5.04 s at 30 fps -> 126 frames at 25 fps
    assert len(indices) == 105
    assert indices[:8].tolist() == [0, 1, 2, 4, 5, 6, 7, 8]  # floor(n * 1.2 + 0.5)
    assert sn.resample_frame_indices(100, 25.0, 25).tolist() == list(range(100))
    assert sn.resample_frame_indices(48, 24.0, 25)[-3:].tolist() == [45, 46, 47]  # 50 frames, last clamps
    assert sn.usable_windows(121, 121 * 640) == 116
    assert sn.usable_windows(121, 100 * 640 + 639) == 95  # audio shorter: upstream's min_length


# ----------------------------------------------------------------------------------------- checkpoints
@needs_syncnet_python
def test_release_format_loads_strictly_through_metric_load(random_cards: Path, syncnet_state) -> None:
    metric = LipSyncSyncNet()
    metric.load()
    loaded = metric._pipeline.syncnet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in syncnet_state.items())
    assert len(loaded) - len(syncnet_state) == sum(k.endswith("num_batches_tracked") for k in loaded) == 14
    detector = metric._pipeline.detector.net.state_dict()
    assert torch.equal(detector["conf.1.bias"], torch.tensor([30.0, -30.0]))
    # the same file loads through syncnet_python's own loading code, and upstream's copy-by-name
    path = random_cards / sn.SYNCNET_MODEL / sn.SYNCNET_V2.file
    upstream_syncnet(torch.load(path, weights_only=True))
    assert isinstance(torch.load(path, weights_only=True), OrderedDict)


@needs_syncnet_python
def test_missing_and_extra_keys_are_refused_by_name(tmp_path: Path, syncnet_state) -> None:
    missing = OrderedDict((k, v) for k, v in syncnet_state.items() if k != "netcnnlip.0.weight")
    with pytest.raises(WeightsError, match=r"not a SyncNet v2 checkpoint: missing keys \['netcnnlip.0.weight'\]"):
        sn.load_syncnet(save_like_release(missing, tmp_path / "missing.model"))
    extra = OrderedDict(syncnet_state, **{"netfcaud.9.weight": torch.zeros(3)})
    with pytest.raises(WeightsError, match=r"unexpected keys \['netfcaud.9.weight'\]"):
        sn.load_syncnet(save_like_release(extra, tmp_path / "extra.model"))
    wrong = OrderedDict(syncnet_state, **{"netfclip.3.bias": torch.zeros(512)})
    with pytest.raises(WeightsError, match=r"wrong shapes \['netfclip.3.bias \(512,\) \(network \(1024,\)\)'\]"):
        sn.load_syncnet(save_like_release(wrong, tmp_path / "shape.model"))
    torch.save(sn.SyncNetV2(), tmp_path / "module.model")  # a pickled module, not a state dict
    with pytest.raises(WeightsError, match="cannot be read as a SyncNet v2 state dict"):
        sn.load_syncnet(tmp_path / "module.model")
    s3fd = random_s3fd_state(1)
    net = sn.new_s3fd("cpu")
    with pytest.raises(WeightsError, match=r"S3FD face detector checkpoint: missing keys \['L2Norm3_3.weight'\]"):
        missing_l2 = {k: v for k, v in s3fd.items() if k != "L2Norm3_3.weight"}
        sn.load_strict(net, missing_l2, source="x", what="S3FD face detector")
    with pytest.raises(WeightsError, match=r"unexpected keys \['vgg.0.running_mean'\]"):
        sn.load_strict(net, {**s3fd, "vgg.0.running_mean": torch.zeros(64)}, source="x", what="S3FD face detector")


@needs_syncnet_python
def test_wrong_sha256_is_refused_before_loading(random_cards: Path, monkeypatch) -> None:
    good = LipSyncSyncNet.weights
    monkeypatch.setattr(LipSyncSyncNet, "weights", (good[0], syncnet_card(sn.S3FD_FACE, Path("unused"), "e" * 64)))
    metric = LipSyncConfidenceSyncNet()
    with pytest.raises(WeightsError, match=r"syncnet-v2/sfd_face.pth.*expected e{64}.*bench models pull syncnet-v2"):
        metric.load()
    assert not metric._loaded and not hasattr(metric, "_pipeline")


def test_real_cards() -> None:
    names = {w.name: (w.source, w.sha256, w.size_bytes) for w in LipSyncSyncNet.weights}
    assert names == {
        "syncnet-v2/syncnet_v2.model": (
            "url:https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
            "961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442", 54573114),
        "syncnet-v2/sfd_face.pth": (
            "url:https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
            "d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491", 89844381),
    }
    assert LipSyncConfidenceSyncNet.weights == LipSyncSyncNet.weights


# ----------------------------------------------------------------------------------------- metric and failures
@needs_syncnet_python
def test_too_short_clip_fails_with_the_minimum(random_cards: Path) -> None:
    metric = LipSyncSyncNet()
    metric.load()
    frames = np.zeros((100, 64, 64, 3), np.uint8)
    with pytest.raises(SampleFailure, match=r"100 video frames.*needs >= 101 video frames") as failure:
        metric.extract(_media(frames, 25.0, np.zeros(100 * 640), "short25"))
    assert failure.value.code == "too_short"
    frames = np.zeros((120, 64, 64, 3), np.uint8)  # 4 s at 30 fps -> 100 frames at 25 fps
    with pytest.raises(SampleFailure, match=r"100 video frames .* \(from 30 fps\)") as failure:
        metric.extract(_media(frames, 30.0, np.zeros(64_000), "short30"))
    assert failure.value.code == "too_short"
    with pytest.raises(SampleFailure, match=r"2 frames of audio") as failure:
        metric.extract(_media(np.zeros((110, 64, 64, 3), np.uint8), 25.0, np.zeros(1300), "mute"))
    assert failure.value.code == "too_short"


@needs_syncnet_python
def test_no_face_track_on_faceless_frames(random_cards: Path) -> None:
    metric = LipSyncSyncNet()
    metric.load()
    frames = np.random.default_rng(2).integers(0, 256, (105, 128, 144, 3), dtype=np.uint8)
    with pytest.raises(SampleFailure, match=r"frames of 144x100 px are too small for S3FD") as failure:
        metric.extract(_media(frames[:, :100], 25.0, np.zeros(105 * 640), "tiny-frames"))
    assert failure.value.code == "no_face_track"
    # the real (random, face-rejecting) S3FD loaded by metric.load, on noise; a short-track config keeps it fast
    config = sn.SyncNetConfig(min_track_frames=10)
    pipeline = sn.SyncNetLSE(metric._pipeline.syncnet, metric._pipeline.detector.net, config)
    with pytest.raises(SampleFailure, match=r"no face track; faces in 0 of 12 frames") as failure:
        pipeline.score(frames[:12], 25.0, np.zeros(12 * 640))
    assert failure.value.code == "no_face_track"
    # pinned config, detector stubbed: no face at all, then a face that is tracked but too small (<= 100 px)
    small_face = np.array([[10.0, 10.0, 80.0, 80.0, 0.99]])
    for boxes, tag, message in ((np.empty((0, 5)), "noise", "faces in 0 of 105 frames"),
                                (small_face, "small-face", "faces in 105 of 105 frames")):
        metric._pipeline.detector.detect = lambda frame, boxes=boxes: boxes
        with pytest.raises(SampleFailure, match=message) as failure:
            metric.extract(_media(frames, 25.0, np.zeros(105 * 640), tag))
        assert failure.value.code == "no_face_track"


@needs_syncnet_python
def test_metrics_share_one_extraction_and_stamp_the_pipeline(random_cards: Path, monkeypatch) -> None:
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (126, 160, 160, 3), dtype=np.uint8)  # 30 fps -> 105 frames at 25 fps
    media = _media(frames, 30.0, 0.1 * rng.standard_normal(30 * 640), "talking")  # audio: 30 frames, 25 windows
    box = np.array([[20.0, 15.0, 140.0, 150.0, 0.99]])
    monkeypatch.setattr(sn.FaceDetector, "detect", lambda self, frame: box)
    calls = []
    original = sn.SyncNetLSE.score
    monkeypatch.setattr(sn.SyncNetLSE, "score", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    lse_d, lse_c = LipSyncSyncNet(), LipSyncConfidenceSyncNet()
    lse_d.load()
    lse_c.load()
    d_features = lse_d.extract(media)
    assert_cache_round_trip(d_features)
    c_features = d_features  # what the runner's cache hands LSE-C: both metrics have one cache key
    assert lse_d.cache_key(media.sha256) == lse_c.cache_key(media.sha256)
    assert len(calls) == 1
    d_score = lse_d.compare(d_features, None, make_pair())
    c_score = lse_c.compare(c_features, None, make_pair())
    assert d_score.value == d_features["lse_d"] and c_score.value == d_features["lse_c"]
    mean = d_features["mean_distances"]
    assert d_score.value == pytest.approx(float(mean.min()), abs=1e-6)
    assert c_score.value == pytest.approx(float(np.median(mean) - mean.min()), abs=1e-5)
    assert d_score.details["offset_frames"] == 15 - int(np.argmin(mean))
    assert d_score.details["track_frames"] == [0, 104] and d_score.details["num_windows"] == 25
    assert d_score.details["source_fps"] == 30.0 and d_score.details["frames_25fps"] == 105
    assert (lse_d.direction, lse_c.direction, lse_d.family, lse_c.family) == ("lower", "higher", "lse_d", "lse_c")
    assert lse_d.needs == lse_c.needs and not lse_d.uses_target
    params = lse_d.provenance().params
    for key, value in (("frame_rate", 25), ("sample_rate_hz", 16_000), ("facedet_scale", 0.25), ("facedet_conf", 0.9),
                       ("min_track_frames", 100), ("min_face_size_px", 100), ("crop_scale", 0.4), ("crop_size_px", 224),
                       ("window_frames", 5), ("window_mfcc_frames", 20), ("num_mfcc", 13), ("vshift_frames", 15),
                       ("min_clip_frames", 101)):
        assert params[key] == value, key
    assert "floor(n*fps/25 + 0.5)" in params["fps_policy"] and "audio leads video" in params["offset"]
    assert lse_d.cache_key(media.sha256) != lse_d.cache_key("f" * 64)
