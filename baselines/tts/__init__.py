"""TTS parts (voice cloning): one module per system, each a :class:`baselines.parts.TTSPart`."""
