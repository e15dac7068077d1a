"""SyncNet v2 lip sync (LSE-D / LSE-C), the joonson/syncnet_python pipeline pinned, on decoded arrays.

The pipeline reproduces ``run_pipeline.py`` (face tracks) + ``SyncNetInstance.evaluate`` (offsets) of
joonson/syncnet_python (commit 6efbb1c), with every number in :class:`SyncNetConfig` (stamped in results):

1. Video at 25 fps. Another frame rate is resampled to 25 fps by taking, for output frame ``n`` (time
   ``n / 25`` s), the input frame nearest in time, ``floor(n * fps / 25 + 0.5)`` (upstream converts with
   ``ffmpeg -r 25``, which also drops/duplicates frames); ``round(T * 25 / fps)`` frames come out.
2. Audio: mono (mean of channels) at 16 kHz, quantised to 16-bit PCM (``pcm_s16le`` as upstream writes it,
   round-half-even, clipped); MFCCs are computed on the int16 values, as upstream does.
3. Faces: S3FD on each RGB frame resized by ``facedet_scale`` 0.25 (bilinear), score > 0.9, NMS IoU 0.1;
   boxes in frame pixels ``x1, y1, x2, y2``.
4. Shots: PySceneDetect 0.6 ``ContentDetector`` (threshold 27, min scene length 15 frames, HSV of BGR
   frames downscaled to 256 px on the long side, bilinear). Only shots of >= ``min_track`` frames are used.
5. Tracks (per shot): greedy, a face joins the track when its frame is <= 25 frames after the track's last
   face and their IoU > 0.5; a track needs more than ``min_track`` = 100 detections, its boxes are linearly
   interpolated over missing frames, and its mean box side (max of mean width, mean height) must exceed
   ``min_face_size`` = 100 px.
6. Crops: box half-size ``s = max(w, h) / 2`` and centre, each median-filtered (kernel 13, zero-padded
   edges as ``scipy.signal.medfilt``); the frame is padded with grey 110; the crop spans ``s`` above the
   centre to ``s (1 + 2 cs)`` below and ``s (1 + cs)`` either side (crop scale ``cs`` = 0.4), resized to
   224 x 224 (bilinear). The audio of the track is samples ``[640 f0, 640 (f1 + 1))``.
7. SyncNet: ``L = min(frames, floor(samples / 640))``; for ``v`` in ``0 .. L - 6`` (``L - 5`` windows, as
   upstream) the lip stream sees BGR crops ``v .. v+4`` (raw 0-255 values), the audio stream MFCC frames
   ``4v .. 4v+19`` (13 coefficients, ``python_speech_features.mfcc`` defaults: 25 ms windows, 10 ms hop,
   26 filters, preemphasis 0.97, lifter 22, c0 replaced by log energy), 1024-d each.
8. Offsets: audio embeddings zero-padded by ``vshift`` = 15 at both ends; ``d[i, j] =
   ||video_i - audio_pad[i + j] + 1e-6||`` (``torch.nn.functional.pairwise_distance``) for ``j`` in
   ``0 .. 30``; ``mean_d[j]`` = mean over ``i``. **LSE-D** = ``min_j mean_d``; **LSE-C** =
   ``median_j mean_d - min_j mean_d``; **offset** = ``vshift - argmin_j mean_d`` (frames).

Offset sign (upstream's): ``offset = k`` means video window ``i`` matches audio window ``i - k``: the sound
of what the lips do at frame ``i`` is heard ``k`` frames (``k x 40 ms``) earlier, i.e. audio leads video
by ``k`` frames (video lags audio). 0 is in sync; negative: audio lags video.

Several tracks (several faces or shots): each is scored and the one with the highest LSE-C is reported
(LSE-D and offset from that same track); the syncnet-python package reports max LSE-C and min LSE-D over
tracks independently, which coincide when there is one track.

Deliberate differences from upstream, all stamped: frames are used as decoded (upstream re-encodes to
MPEG-4 ``-qscale 2``, JPEG frames, XVID crops and JPEG again, each lossy); audio resampling is scipy's
polyphase filter instead of ffmpeg's.

Checkpoints load strictly: ``syncnet_v2.model`` and ``sfd_face.pth`` are torch pickles of a plain state dict
whose keys are the networks' ``state_dict`` keys (upstream's ``loadParameters`` copies by those names; the
package loads ``sfd_face.pth`` with ``load_state_dict``). Their sizes (54573114 and 89844381 bytes) match
the legacy (non-zip) format within a few hundred bytes, the SyncNet file without BatchNorm's
``num_batches_tracked`` counters (added in torch 0.4.1, after the file's release). Those counters are
therefore the only keys allowed to be absent (unused at inference). Any other missing, extra or mis-shaped
key is refused with a :class:`~idlora_bench.core.errors.WeightsError` naming it. Both formats (legacy and zip)
are read with ``torch.load(weights_only=True)``; a pickled module is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import SampleFailure, WeightsError

SYNCNET_MODEL = "syncnet-v2"
SYNCNET_LICENCE = "syncnet_python code MIT (Joon Son Chung); weights: VGG Oxford, research use"

SYNCNET_V2 = WeightsFile(
    model=SYNCNET_MODEL,
    file="syncnet_v2.model",
    source="url:https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
    sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442",
    licence=SYNCNET_LICENCE,
    size_bytes=54573114,
)
S3FD_FACE = WeightsFile(
    model=SYNCNET_MODEL,
    file="sfd_face.pth",
    source="url:https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
    sha256="d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491",
    licence=SYNCNET_LICENCE,
    size_bytes=89844381,
)

UPSTREAM = "joonson/syncnet_python@6efbb1c (run_pipeline.py, SyncNetInstance.evaluate)"
OFFSET_CONVENTION = "offset k > 0: audio leads video by k frames (video window i matches audio window i - k)"
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance's default eps, added to the difference
S3FD_RGB_MEAN = np.array([123.0, 117.0, 104.0], np.float32)  # upstream subtracts (104, 117, 123) in BGR order
S3FD_MIN_INPUT_PX = 28  # S3FD's pooling fails on smaller inputs (upstream crashes); such frames cannot hold a face


@dataclass(frozen=True)
class SyncNetConfig:
    """Every parameter of the pinned pipeline (units in the names: frames, px, Hz)."""

    frame_rate: int = 25
    sample_rate_hz: int = 16_000
    facedet_scale: float = 0.25
    facedet_conf: float = 0.9
    facedet_nms_iou: float = 0.1
    scene_threshold: float = 27.0
    scene_min_len_frames: int = 15
    scene_min_width_px: int = 256
    min_track_frames: int = 100
    num_failed_det_frames: int = 25
    track_iou: float = 0.5
    min_face_size_px: int = 100
    smooth_kernel_frames: int = 13
    crop_scale: float = 0.40
    crop_size_px: int = 224
    pad_value: int = 110
    window_frames: int = 5
    mfcc_per_frame: int = 4
    window_mfcc_frames: int = 20
    num_mfcc: int = 13
    vshift_frames: int = 15
    batch_size: int = 20

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate_hz // self.frame_rate

    @property
    def min_clip_frames(self) -> int:
        """Frames a clip needs at 25 fps: a track must hold more than ``min_track_frames`` detections."""
        return max(self.min_track_frames + 1, self.window_frames + 1)

    def as_params(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "min_clip_frames": self.min_clip_frames,
            "upstream": UPSTREAM,
            "fps_policy": "resample to 25 fps: output frame n takes input frame floor(n*fps/25 + 0.5)",
            "audio": "mean of channels, 16 kHz (scipy resample_poly), int16 PCM (round, clip) for MFCC",
            "mfcc": "python_speech_features.mfcc defaults (25 ms, 10 ms hop, 26 filters, 512 fft, lifter 22)",
            "detector": "S3FD sfd_face.pth on RGB minus (123, 117, 104), bilinear resize by facedet_scale",
            "scenes": "PySceneDetect 0.6 ContentDetector (HSV, MERGE filter), bilinear downscale",
            "lip_input": "BGR crops, raw 0-255 float, 5 frames",
            "distance": "pairwise_distance(eps=1e-6), audio zero-padded by vshift; mean over windows",
            "lse_d": "min over offsets of the mean distance",
            "lse_c": "median over offsets minus min",
            "offset": OFFSET_CONVENTION,
            "multi_track": "track with the highest LSE-C (its LSE-D and offset)",
            "reencode": "none (upstream re-encodes MPEG-4/JPEG/XVID between steps)",
        }


PINNED = SyncNetConfig()


# ----------------------------------------------------------------------------------------- networks
def _conv_bn_relu(layers: list[nn.Module], conv: nn.Module, channels: int, bn: type[nn.Module]) -> None:
    layers += [conv, bn(channels), nn.ReLU(inplace=True)]


class SyncNetV2(nn.Module):
    """SyncNet v2 (Chung & Zisserman 2016), module names and indices as in ``syncnet_v2.model``.

    ``forward_aud``: MFCC windows ``(N, 1, 13, 20)`` -> ``(N, 1024)``.
    ``forward_lip``: BGR crop windows ``(N, 3, 5, 224, 224)`` in 0-255 -> ``(N, 1024)``.
    """

    def __init__(self, embedding_dim: int = 1024) -> None:
        super().__init__()
        audio: list[nn.Module] = []
        _conv_bn_relu(audio, nn.Conv2d(1, 64, 3, padding=1), 64, nn.BatchNorm2d)
        audio.append(nn.MaxPool2d(1, 1))
        _conv_bn_relu(audio, nn.Conv2d(64, 192, 3, padding=1), 192, nn.BatchNorm2d)
        audio.append(nn.MaxPool2d(3, stride=(1, 2)))
        _conv_bn_relu(audio, nn.Conv2d(192, 384, 3, padding=1), 384, nn.BatchNorm2d)
        _conv_bn_relu(audio, nn.Conv2d(384, 256, 3, padding=1), 256, nn.BatchNorm2d)
        _conv_bn_relu(audio, nn.Conv2d(256, 256, 3, padding=1), 256, nn.BatchNorm2d)
        audio.append(nn.MaxPool2d(3, stride=2))
        audio += [nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512), nn.ReLU()]
        self.netcnnaud = nn.Sequential(*audio)
        self.netfcaud = self._head(embedding_dim)
        self.netfclip = self._head(embedding_dim)
        lip: list[nn.Module] = []
        _conv_bn_relu(lip, nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, nn.BatchNorm3d)
        lip.append(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)))
        _conv_bn_relu(lip, nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, nn.BatchNorm3d)
        lip.append(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        for _ in range(3):
            _conv_bn_relu(lip, nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, nn.BatchNorm3d)
        lip.append(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)))
        _conv_bn_relu(lip, nn.Conv3d(256, 512, (1, 6, 6)), 512, nn.BatchNorm3d)
        self.netcnnlip = nn.Sequential(*lip)

    @staticmethod
    def _head(embedding_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding_dim))

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, crops: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(crops).flatten(1))


def new_s3fd(device: str = "cpu") -> nn.Module:
    """An S3FD network (random init), the class shipped in the syncnet_python package (upstream's port).

    Its forward takes ``(1, 3, H, W)`` mean-subtracted RGB and returns detections ``(1, 2, 750, 5)``:
    per class (0 background, 1 face) up to 750 rows ``score, x1, y1, x2, y2`` (box relative to the image),
    after its own decoding and NMS (IoU 0.3, scores > 0.05), best first.
    """
    from syncnet_python.detectors.s3fd.nets import S3FDNet

    return S3FDNet(device=device)


# ----------------------------------------------------------------------------------------- checkpoints
def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint that must be a plain state dict (``torch.load(weights_only=True)``)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled modules, foreign pickles, truncated files
        raise WeightsError(
            f"{path}: cannot be read as a {what} state dict with torch.load(weights_only=True) "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{path}: a {what} checkpoint must be a dict of tensors, got {type(state).__name__}")
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: {what} checkpoint entries that are not tensors: {_names(bad)}")
    return dict(state)


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    what: str,
    optional_suffixes: tuple[str, ...] = (),
) -> None:
    """Copy ``state`` into ``module``; every key must match by name and shape.

    Keys of the module ending in one of ``optional_suffixes`` may be absent from ``state`` (they keep the
    module's value). Raises WeightsError naming missing, unexpected and mis-shaped keys.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(optional_suffixes)]
    extra = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (network {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_names(missing)}")
    if extra:
        problems.append(f"unexpected keys {_names(extra)}")
    if shapes:
        problems.append(f"wrong shapes {_names(shapes)}")
    if problems:
        raise WeightsError(f"{source}: not a {what} checkpoint: " + "; ".join(problems))
    full = {k: state.get(k, v) for k, v in expected.items()}
    module.load_state_dict(full, strict=True)


def _names(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > limit else ''}]"


def load_syncnet(path: str | Path, device: str = "cpu") -> SyncNetV2:
    """``syncnet_v2.model`` -> SyncNetV2 in eval mode on ``device`` (strict; see the module docstring)."""
    net = SyncNetV2()
    load_strict(net, read_state_dict(path, "SyncNet v2"), source=str(path), what="SyncNet v2",
                optional_suffixes=(".num_batches_tracked",))
    return net.to(device).eval()


def load_s3fd(path: str | Path, device: str = "cpu") -> nn.Module:
    """``sfd_face.pth`` -> S3FD in eval mode on ``device`` (strict: every key must match)."""
    net = new_s3fd(device)
    load_strict(net, read_state_dict(path, "S3FD"), source=str(path), what="S3FD face detector")
    return net.to(device).eval()


# ----------------------------------------------------------------------------------------- frames and audio
def resample_frame_indices(num_frames: int, fps: float, target_fps: int) -> np.ndarray:
    """Input frame index for each output frame at ``target_fps`` (nearest in time, half up)."""
    count = max(1, int(math.floor(num_frames * target_fps / fps + 0.5)))
    indices = np.floor(np.arange(count) * fps / target_fps + 0.5).astype(np.int64)
    return np.minimum(indices, num_frames - 1)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM (round half to even, clipped), as a 16-bit WAV would hold."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc_features(pcm16: np.ndarray, sample_rate_hz: int = 16_000) -> np.ndarray:
    """``python_speech_features.mfcc`` (defaults, 13 coefficients) of int16 PCM -> ``(13, M)`` float32."""
    import python_speech_features

    return python_speech_features.mfcc(pcm16, sample_rate_hz).T.astype(np.float32)


# ----------------------------------------------------------------------------------------- faces
def nms_keep(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on ``(K, 5)`` rows ``x1, y1, x2, y2, score`` (areas without +1) -> kept row indices."""
    x1, y1, x2, y2, scores = (boxes[:, i] for i in range(5))
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        inter = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])) * np.maximum(
            0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        )
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, np.int64)


class FaceDetector:
    """S3FD on one RGB frame at one scale: ``detect(rgb) -> (K, 5)`` float64 ``x1, y1, x2, y2, score``."""

    def __init__(self, net: nn.Module, config: SyncNetConfig = PINNED, device: str = "cpu") -> None:
        self.net = net
        self.config = config
        self.device = device

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of the detector input for a frame (OpenCV's rounding of size x scale)."""
        import cv2

        small = cv2.resize(np.zeros((height, width), np.uint8), dsize=(0, 0), fx=self.config.facedet_scale,
                           fy=self.config.facedet_scale, interpolation=cv2.INTER_LINEAR)
        return small.shape[0], small.shape[1]

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        height, width = rgb.shape[:2]
        scale = self.config.facedet_scale
        small = cv2.resize(rgb, dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        if min(small.shape[:2]) < S3FD_MIN_INPUT_PX:
            raise ValueError(f"frame {width}x{height} is too small for S3FD at scale {scale}")
        chw = small.transpose(2, 0, 1).astype(np.float32) - S3FD_RGB_MEAN[:, None, None]
        detections = self.net(torch.from_numpy(np.ascontiguousarray(chw))[None].to(self.device))[0].cpu()
        size = torch.tensor([width, height, width, height], dtype=torch.float32)
        rows = []
        for per_class in detections:  # rows are sorted by score; keep the leading run above the threshold
            above = (per_class[:, 0] > self.config.facedet_conf).numpy()
            count = len(above) if above.all() else int(np.argmin(above))
            if count:
                boxes = (per_class[:count, 1:] * size).numpy().astype(np.float64)
                rows.append(np.concatenate([boxes, per_class[:count, :1].numpy().astype(np.float64)], axis=1))
        if not rows:
            return np.empty((0, 5))
        found = np.concatenate(rows)
        return found[nms_keep(found, self.config.facedet_nms_iou)]


def detect_shots(frames_rgb: np.ndarray, config: SyncNetConfig = PINNED) -> list[tuple[int, int]]:
    """Shots ``[start, end)`` (frame indices) from PySceneDetect's ContentDetector on BGR frames."""
    import cv2
    from scenedetect.detectors import ContentDetector

    num_frames, height, width = frames_rgb.shape[:3]
    factor = max(width, height) / config.scene_min_width_px if max(width, height) >= config.scene_min_width_px else 1
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    detector = ContentDetector(threshold=config.scene_threshold, min_scene_len=config.scene_min_len_frames)
    cuts: list[int] = []
    for index, rgb in enumerate(frames_rgb):
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if factor > 1:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        cuts += detector.process_frame(index, bgr)
    cuts += detector.post_process(num_frames - 1)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < num_frames)), num_frames]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass(frozen=True)
class FaceTrack:
    """A face track: ``frames`` ``(n,)`` consecutive frame indices, ``boxes`` ``(n, 4)`` float64 pixels."""

    frames: np.ndarray
    boxes: np.ndarray

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        """Last frame (inclusive)."""
        return int(self.frames[-1])


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def track_faces(detections: Sequence[Sequence[Mapping[str, Any]]], config: SyncNetConfig = PINNED) -> list[FaceTrack]:
    """Tracks of one shot from per-frame detections ``{"frame": int, "bbox": [x1, y1, x2, y2], ...}``.

    Repeatedly starts a track at the first remaining face and walks the frames in order: a face joins when
    its frame is at most ``num_failed_det_frames`` after the track's last face and IoU > ``track_iou``;
    a face more than that many frames later ends the walk through that frame. As upstream, after a face
    joins, the next face of the same frame is not looked at in that walk (upstream removes from the list it
    iterates); with NMS at IoU 0.1 it could not join anyway.
    """
    from scipy.interpolate import interp1d

    remaining = [list(faces) for faces in detections]
    tracks: list[FaceTrack] = []
    while True:
        track: list[Mapping[str, Any]] = []
        for faces in remaining:
            position = 0
            while position < len(faces):
                face = faces[position]
                if not track:
                    track.append(faces.pop(position))
                elif face["frame"] - track[-1]["frame"] <= config.num_failed_det_frames:
                    if box_iou(face["bbox"], track[-1]["bbox"]) > config.track_iou:
                        track.append(faces.pop(position))
                else:
                    break
                position += 1
        if not track:
            return tracks
        if len(track) <= config.min_track_frames:
            continue
        frame_numbers = np.array([face["frame"] for face in track])
        boxes = np.array([np.array(face["bbox"]) for face in track])
        frames = np.arange(frame_numbers[0], frame_numbers[-1] + 1)
        filled = np.stack([interp1d(frame_numbers, boxes[:, i])(frames) for i in range(4)], axis=1)
        side = max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1]))
        if side > config.min_face_size_px:
            tracks.append(FaceTrack(frames, filled))


def crop_track(frames_rgb: np.ndarray, track: FaceTrack, config: SyncNetConfig = PINNED) -> np.ndarray:
    """Smoothed square-ish face crops of a track -> ``(n, 224, 224, 3)`` uint8 (same channel order as input)."""
    import cv2
    from scipy.signal import medfilt

    boxes = track.boxes
    half = np.array([max(b[3] - b[1], b[2] - b[0]) / 2 for b in boxes])
    centre_y = np.array([(b[1] + b[3]) / 2 for b in boxes])
    centre_x = np.array([(b[0] + b[2]) / 2 for b in boxes])
    kernel = config.smooth_kernel_frames
    half, centre_x, centre_y = (medfilt(v, kernel_size=kernel) for v in (half, centre_x, centre_y))
    cs, size = config.crop_scale, config.crop_size_px
    crops = np.empty((len(track.frames), size, size, 3), np.uint8)
    for i, frame_index in enumerate(track.frames):
        bs = half[i]
        pad = int(bs * (1 + 2 * cs))
        padded = np.pad(frames_rgb[frame_index], ((pad, pad), (pad, pad), (0, 0)), constant_values=config.pad_value)
        my, mx = centre_y[i] + pad, centre_x[i] + pad
        face = padded[int(my - bs) : int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)) : int(mx + bs * (1 + cs))]
        crops[i] = cv2.resize(face, (size, size))
    return crops


# ----------------------------------------------------------------------------------------- SyncNet scores
@dataclass(frozen=True)
class SyncScores:
    """LSE of one track: ``mean_distances`` ``(2 vshift + 1,)`` indexed by ``j`` = offset slot."""

    lse_d: float
    lse_c: float
    offset: int
    mean_distances: np.ndarray
    num_windows: int


def offset_distances(video: torch.Tensor, audio: torch.Tensor, vshift: int) -> torch.Tensor:
    """``(N, D)`` video and audio embeddings -> ``(N, 2 vshift + 1)`` distances ``||v_i - a_pad[i+j] + eps||``.

    ``a_pad`` is ``audio`` with ``vshift`` zero rows before and after (upstream's ``calc_pdist``).
    """
    count, width = len(video), 2 * vshift + 1
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    index = torch.arange(count)[:, None] + torch.arange(width)[None, :]
    pairs_video = video[:, None, :].expand(count, width, video.shape[1]).reshape(-1, video.shape[1])
    pairs_audio = padded[index.reshape(-1)]
    return torch.nn.functional.pairwise_distance(pairs_video, pairs_audio, eps=PAIRWISE_EPS).reshape(count, width)


def sync_scores(video: torch.Tensor, audio: torch.Tensor, vshift: int) -> SyncScores:
    """LSE-D, LSE-C and offset from per-window embeddings ``(N, D)`` (see the module docstring)."""
    # mean over windows of the (2 vshift + 1, N) layout upstream reduces (same summation order)
    mean = offset_distances(video.float().cpu(), audio.float().cpu(), vshift).t().contiguous().mean(dim=1)
    minval, minidx = torch.min(mean, 0)
    return SyncScores(
        lse_d=float(minval),
        lse_c=float(torch.median(mean) - minval),
        offset=int(vshift - minidx),
        mean_distances=mean.numpy().astype(np.float32),
        num_windows=len(video),
    )


def usable_windows(num_frames: int, num_samples: int, config: SyncNetConfig = PINNED) -> int:
    """Number of 5-frame windows upstream evaluates: ``min(frames, floor(samples / 640)) - 5``."""
    return min(num_frames, num_samples // config.samples_per_frame) - config.window_frames


@torch.inference_mode()
def embed_windows(
    net: SyncNetV2, crops_bgr: np.ndarray, pcm16: np.ndarray, config: SyncNetConfig = PINNED, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings ``(N, 1024)`` each (CPU float32) of the ``N = usable_windows`` windows."""
    count = usable_windows(len(crops_bgr), len(pcm16), config)
    if count < 1:
        raise ValueError(f"no complete window: {len(crops_bgr)} frames, {len(pcm16)} samples")
    video = torch.from_numpy(np.ascontiguousarray(crops_bgr)).permute(3, 0, 1, 2)[None].float()
    mfcc = torch.from_numpy(mfcc_features(pcm16, config.sample_rate_hz))[None, None]
    lips, sounds = [], []
    for start in range(0, count, config.batch_size):
        starts = range(start, min(count, start + config.batch_size))
        lip_in = torch.cat([video[:, :, v : v + config.window_frames] for v in starts])
        step, span = config.mfcc_per_frame, config.window_mfcc_frames
        aud_in = torch.cat([mfcc[..., v * step : v * step + span] for v in starts])
        lips.append(net.forward_lip(lip_in.to(device)).float().cpu())
        sounds.append(net.forward_aud(aud_in.to(device)).float().cpu())
    return torch.cat(lips), torch.cat(sounds)


# ----------------------------------------------------------------------------------------- the pipeline
@dataclass(frozen=True)
class TrackResult:
    start: int
    end: int
    scores: SyncScores


@dataclass(frozen=True)
class ClipResult:
    """All scored tracks and the chosen one (highest LSE-C, first on ties)."""

    tracks: list[TrackResult]
    chosen: int
    source_fps: float
    num_frames: int
    num_shots: int
    frames_with_face: int
    detections: list[np.ndarray] = field(repr=False, default_factory=list)

    @property
    def best(self) -> TrackResult:
        return self.tracks[self.chosen]


class SyncNetLSE:
    """The pinned pipeline with loaded networks: ``score(frames_rgb, fps, audio_16k) -> ClipResult``.

    Raises SampleFailure ``too_short`` (fewer than ``min_clip_frames`` frames at 25 fps, or audio shorter
    than one window) or ``no_face_track`` (no track survives detection, shots, tracking and size filters, or
    frames too small for S3FD: under 28 px a side at scale 0.25, where upstream's detector crashes).
    """

    def __init__(self, syncnet: SyncNetV2, s3fd: nn.Module, config: SyncNetConfig = PINNED, device: str = "cpu"):
        self.syncnet = syncnet
        self.detector = FaceDetector(s3fd, config, device)
        self.config = config
        self.device = device

    @classmethod
    def from_files(cls, syncnet_path: str | Path, s3fd_path: str | Path, config: SyncNetConfig = PINNED,
                   device: str = "cpu") -> SyncNetLSE:
        return cls(load_syncnet(syncnet_path, device), load_s3fd(s3fd_path, device), config, device)

    def score(self, frames_rgb: np.ndarray, fps: float, audio_16k: np.ndarray, name: str = "clip") -> ClipResult:
        config = self.config
        if abs(fps - config.frame_rate) > 1e-3 * config.frame_rate:
            frames_rgb = frames_rgb[resample_frame_indices(len(frames_rgb), fps, config.frame_rate)]
        pcm = to_pcm16(audio_16k)
        audio_frames = len(pcm) // config.samples_per_frame
        if len(frames_rgb) < config.min_clip_frames or audio_frames < config.window_frames + 1:
            raise SampleFailure(
                "too_short",
                f"{name}: {len(frames_rgb)} video frames and {audio_frames} frames of audio at {config.frame_rate} fps "
                f"(from {fps:g} fps); SyncNet LSE needs >= {config.min_clip_frames} video frames (a face track "
                f"longer than min_track={config.min_track_frames}) and >= {config.window_frames + 1} frames of audio",
            )
        detector_input = self.detector.input_size(*frames_rgb.shape[1:3])
        if min(detector_input) < S3FD_MIN_INPUT_PX:
            raise SampleFailure(
                "no_face_track",
                f"{name}: frames of {frames_rgb.shape[2]}x{frames_rgb.shape[1]} px are too small for S3FD at scale "
                f"{config.facedet_scale} (input {detector_input[1]}x{detector_input[0]}, needs >= {S3FD_MIN_INPUT_PX} "
                f"px a side); a face track needs a mean face side > {config.min_face_size_px} px",
            )
        detections = [self.detector.detect(frame) for frame in frames_rgb]
        shots = detect_shots(frames_rgb, config)
        tracks = self.find_tracks(detections, shots)
        frames_with_face = sum(1 for boxes in detections if len(boxes))
        if not tracks:
            long_shots = sum(1 for start, end in shots if end - start >= config.min_track_frames)
            raise SampleFailure(
                "no_face_track",
                f"{name}: no face track; faces in {frames_with_face} of {len(frames_rgb)} frames "
                f"(S3FD score > {config.facedet_conf}), {len(shots)} shot(s), {long_shots} of >= "
                f"{config.min_track_frames} frames; a track needs > {config.min_track_frames} detections "
                f"and a mean face side > {config.min_face_size_px} px",
            )
        results = []
        for track in tracks:
            crops = crop_track(frames_rgb, track, config)[..., ::-1]  # SyncNet's lip stream reads BGR
            spf = config.samples_per_frame
            audio = pcm[track.start * spf : (track.end + 1) * spf]
            if usable_windows(len(crops), len(audio), config) < 1:
                continue
            video_emb, audio_emb = embed_windows(self.syncnet, crops, audio, config, self.device)
            results.append(TrackResult(track.start, track.end, sync_scores(video_emb, audio_emb, config.vshift_frames)))
        if not results:
            raise SampleFailure(
                "too_short", f"{name}: the audio ({audio_frames} frames) ends before any face track has a full window"
            )
        chosen = max(range(len(results)), key=lambda i: (results[i].scores.lse_c, -i))
        return ClipResult(results, chosen, float(fps), len(frames_rgb), len(shots), frames_with_face, detections)

    def find_tracks(self, detections: Sequence[np.ndarray], shots: Iterable[tuple[int, int]]) -> list[FaceTrack]:
        """Tracks of every shot of >= ``min_track_frames`` frames (detections: per frame ``(K, 5)``)."""
        faces = [
            [{"frame": index, "bbox": row[:4].tolist(), "conf": float(row[4])} for row in boxes]
            for index, boxes in enumerate(detections)
        ]
        tracks: list[FaceTrack] = []
        for start, end in shots:
            if end - start >= self.config.min_track_frames:
                tracks += track_faces(faces[start:end], self.config)
        return tracks
