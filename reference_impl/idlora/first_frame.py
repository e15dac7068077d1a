"""The visual condition: output resolution from the first frame, and the frame as a tensor.

Constants (``DEFAULT_LONG_SIDE`` 512, multiples of 32, at most 576 x 1024 pixels) match the released inference.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

DEFAULT_LONG_SIDE = 512
RESOLUTION_MULTIPLE = 32
MAX_PIXELS = 576 * 1024


def auto_resolution(
    height: int, width: int, *, long_side: int = DEFAULT_LONG_SIDE, multiple: int = RESOLUTION_MULTIPLE,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """Output ``(height, width)`` in pixels for a first frame of ``height x width``: aspect kept, long side
    ``long_side`` (and at most ``max_pixels``), each side rounded to the nearest multiple of ``multiple``
    (at least ``multiple``). A 720x1280 frame gives (288, 512); a square one (512, 512)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(long_side / max(height, width), math.sqrt(max_pixels / (height * width)))

    def snap(value: float) -> int:
        return max(round(round(value) / multiple) * multiple, multiple)

    return snap(height * scale), snap(width * scale)


def image_to_tensor(image: Any) -> torch.Tensor:
    """First frame -> ``(3, H, W)`` float32 in [0, 1]. Accepts ``(H, W, 3)`` uint8 numpy, a PIL image, or a
    ``(3, H, W)`` float tensor in [0, 1]."""
    if isinstance(image, torch.Tensor):
        tensor = image.detach().to(torch.float32).cpu()
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"image tensor must be (3, H, W), got {tuple(tensor.shape)}")
        return tensor
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {array.dtype} {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).to(torch.float32) / 255.0


FirstFrameFit = Literal["resize", "crop"]


def fit_frame(pixels: torch.Tensor, height: int, width: int, fit: FirstFrameFit = "resize") -> torch.Tensor:
    """``(1, 3, H, W)`` float pixels -> ``(1, 3, height, width)``, bilinear without antialiasing.

    ``"resize"``: stretch to the size (the authors' LTX-2 one-stage script, ``scripts/inference_one_stage.py:465-471``).
    ``"crop"``: resize to COVER the size keeping the aspect (the other side truncated to an int), then take the centred
    crop (their two-stage script for both stages, ``scripts/inference_two_stage.py:642-653``, and every LTX-2.3 script).
    """
    import torch.nn.functional as F

    if fit == "resize":
        return F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False)
    if fit != "crop":
        raise ValueError(f"first-frame fit must be 'resize' or 'crop', got {fit!r}")
    src_h, src_w = int(pixels.shape[-2]), int(pixels.shape[-1])
    if (src_h, src_w) == (height, width):
        return pixels
    aspect, target = src_w / src_h, width / height
    cover_h, cover_w = (height, int(height * aspect)) if aspect > target else (int(width / aspect), width)
    covered = F.interpolate(pixels, size=(cover_h, cover_w), mode="bilinear", align_corners=False)
    top, left = (cover_h - height) // 2, (cover_w - width) // 2
    return covered[:, :, top:top + height, left:left + width]
