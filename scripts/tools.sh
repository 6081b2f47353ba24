#!/usr/bin/env bash
# Installs the validators and independent clients the tests use into a private
# virtual environment, if missing: hadolint (Dockerfile lint), kubernetes-validate
# and check-jsonschema (manifests), yamllint, Python grpcio with its reflection
# and health clients, and (with npm) the typed KEDA, Karpenter and Prometheus
# Operator models behind `validate-crs`. Prints the environment's bin directory.
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
# The custom-resource validator: node-validators/ copied beside its
# node_modules, and a wrapper in the venv's bin.
node_dir="$venv/node-validators"
if ! cmp -s node-validators/package.json "$node_dir/package.json" 2>/dev/null; then
  echo "tools: installing the @kubernetes-models validators into $node_dir" >&2
  mkdir -p "$node_dir"
  cp node-validators/package.json "$node_dir/package.json.new"
  (cd "$node_dir" && mv package.json.new package.json \
     && npm install --no-audit --no-fund --no-package-lock --loglevel=error >&2)
fi
cp node-validators/validate-crs.mjs "$node_dir/"
printf '#!/bin/sh\nexec node "%s/validate-crs.mjs" "$@"\n' "$node_dir" > "$venv/bin/validate-crs"
chmod +x "$venv/bin/validate-crs"
echo "$venv/bin"
