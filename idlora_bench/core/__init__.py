"""Layer 0, imported by every other layer and importing none of them: the data model (``types``), errors,
the name registry, plugins, file helpers (atomic writes, ``file_sha256``) and provenance.

Nothing here imports torch, cv2 or PyAV.
"""
