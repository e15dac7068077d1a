"""Prompt texts: the released negative prompt and the ``[VISUAL]/[SPEECH]/[SOUNDS]`` format check."""

from __future__ import annotations

import re

# The negative prompt of the released ID-LoRA inference examples (one_stage/args.json).
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, "
    "artifacts around text, inconsistent perspective, camera shake, incorrect depth of field, background too "
    "sharp, background clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color "
    "banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect "
    "ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted "
    "audio, distorted voice, robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added "
    "dialogue, repetitive speech, jittery movement, awkward pauses, incorrect timing, unnatural transitions, "
    "inconsistent framing, tilted camera, flat lighting, inconsistent tone, cinematic oversaturation, stylized "
    "filters, or AI artifacts."
)

PROMPT_FORMAT = re.compile(r"^\s*\[VISUAL\]:.+\[SPEECH\]:.+\[SOUNDS\]:.+$", re.DOTALL)
