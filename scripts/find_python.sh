#!/usr/bin/env bash
# Print the path of the newest Python >= 3.12 on this machine, or fail with advice.
# A candidate counts only if running it works: pyenv shims exist for versions that
# are installed but not selected, and those shims fail when run.
set -u
if [ -n "${PYTHON:-}" ]; then
  if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    echo "$PYTHON"; exit 0
  fi
  echo "PYTHON=$PYTHON is not a working Python >= 3.12" >&2; exit 1
fi
candidates=()
for v in 3.14 3.13 3.12; do
  candidates+=("python$v")
done
candidates+=(python3 python)
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
for d in "$pyenv_root"/versions/3.1[2-9]* "$pyenv_root"/versions/3.[2-9][0-9]*; do
  [ -x "$d/bin/python" ] && candidates+=("$d/bin/python")
done
best=""; best_ver=0
for c in "${candidates[@]}"; do
  ver=$("$c" -c 'import sys; v=sys.version_info; print(v[0]*100+v[1] if v >= (3, 12) else 0)' 2>/dev/null) || continue
  [ -n "$ver" ] || continue
  if [ "$ver" -gt "$best_ver" ]; then
    best_ver=$ver
    best=$("$c" -c 'import sys; print(sys.executable)')
  fi
done
if [ -z "$best" ]; then
  cat >&2 <<'MSG'
No Python >= 3.12 found (jax 0.12 needs it). Either install one (pyenv install 3.12),
point PYTHON= at one (make test PYTHON=/path/to/python3.12), or use conda:
    conda env create -f environment.yml && conda activate ppo-clip-course
    make test PYTHON=$(which python)
MSG
  exit 1
fi
echo "$best"
