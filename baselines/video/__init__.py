"""Video parts (audio-driven image-to-video): one module per system, each a :class:`baselines.parts.VideoPart`."""
