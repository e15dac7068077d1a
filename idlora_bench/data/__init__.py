"""Layer 1 (imports ``core``): the split registry (``splits``) and media I/O on PyAV (``media``)."""
