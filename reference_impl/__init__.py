"""Reference implementations of methods scored by idlora-bench (ID-LoRA on LTX-2)."""
