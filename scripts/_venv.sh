# Sourced by scripts/run and scripts/test: a virtual environment in .venv with the project installed.
# $1: what to install ("." for the hub, ".[test]" for the tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    echo "installing python3-venv from Debian's packages"
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv && "$PYTHON" -m venv .venv
  fi
  .venv/bin/pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$(echo "$1" | tr -c 'a-z' '_')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install --quiet -e "$1"
  touch "$stamp"
fi
