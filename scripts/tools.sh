#!/usr/bin/env bash
# Installs the validators and independent clients the tests use into a private
# virtual environment, if missing: hadolint (Dockerfile lint), kubernetes-validate
# and check-jsonschema (manifests), yamllint, and Python grpcio with its
# reflection and health clients. Prints the environment's bin directory.
# Debian's docker-compose 1.29 (for `config -q`) comes from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")"
venv=${SPOTENC_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/spotenc/tools-venv}
stamp="$venv/.requirements"
if ! cmp -s requirements-tools.txt "$stamp" 2>/dev/null; then
  echo "tools: installing $(grep -cv '^#' requirements-tools.txt) Python tools into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements-tools.txt >&2
  cp requirements-tools.txt "$stamp"
fi
echo "$venv/bin"
