"""ID-LoRA on LTX-2 (diffusers + peft): negative temporal positions, identity guidance, pipeline, training.

Inference: ``positions`` (audio token intervals in seconds and the reference's negative shift),
``guidance`` (the five-pass guided x0 prediction), ``sampling`` (the Euler loop with reference re-clamping),
``pipeline`` (``IDLoRAPipeline``), ``methods`` (the ``idlora`` and ``ltx-zeroshot`` method adapters).
Training: ``lora`` (the 18 audio-path adapters), ``convert`` (ltx-core <-> peft <-> diffusers LoRA key
names), ``training`` (the audio_ref_only_ic recipe: flow matching, masks, losses), ``dataset`` (latent
cache, pair encoding), ``train`` (``python -m reference_impl.idlora.train --config FILE``).
``tiny``: tiny random components that run on CPU (tests and smoke runs only).
"""
