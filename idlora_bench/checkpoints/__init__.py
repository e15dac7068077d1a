"""Layer 1 (imports ``core``): weights cards (``weights``) and the model store (``model_store``: pull, verify,
import)."""
