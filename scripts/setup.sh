#!/usr/bin/env bash
# Create .venv and install idlora-bench with both metric profiles (offline, paper) and the test tools.
# Idempotent: does nothing when pyproject.toml and constraints.txt are unchanged since the last install.
# torch is pinned (constraints.txt) to the CPU wheel; nothing pulls CUDA wheels or torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin="${PYTHON:-python3}"
stamp=".venv/.idlora-bench-install-stamp"
wanted="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
scripts/install_chromium.sh  # system package for the headless browser tests (skipped where it cannot install)
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "setup: installing idlora-bench into .venv (about 2 minutes on a fresh machine)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0 'setuptools<82'
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[offline,paper,reference,api,dev]'
  # Their declared dependencies would pull torchvision, triton, a CUDA torchaudio or an old click; what they import is in
  # the 'paper' and 'dev' extras above.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt \
    insightface==2.1 syncnet-python==0.2.3 openai-whisper==20250625 scenedetect==0.6.7.1 s3prl==0.4.18
  echo "$wanted" > "$stamp"
fi
