#!/usr/bin/env bash
# Regenerates requirements/image.txt, the image's pinned and hashed dependencies: everything
# `floxide[operator,ui,otel]` needs (the `redis` extra included) and the build requirements of the package
# itself (setuptools, wheel), each pinned to one version with the hashes of all its files on PyPI,
# so the Dockerfile can install them with `pip install --require-hashes`.
#
#   scripts/lock-image.sh              # after a change to pyproject.toml's dependencies: keeps every
#                                      # pin that still fits, adds or moves only what must change
#   scripts/lock-image.sh --upgrade    # move every pin to the newest release that fits
#   scripts/lock-image.sh --upgrade-package kopf
#
# Run it with Python 3.11, the image's Python (markers are evaluated for it): the tool is pip-tools'
# pip-compile from the dev extra (`pip install -e '.[dev]'`), taken from .venv/bin or $LOCK_COMPILER.
# LOCK_FILE overrides the output (tests/packaging/test_image_lock.py compiles into a copy).
set -euo pipefail
cd "$(dirname "$0")/.."

pip_compile=${LOCK_COMPILER:-.venv/bin/pip-compile}
if [ ! -x "$pip_compile" ]; then
  echo "error: $pip_compile not found: install the dev extra (pip install -e '.[dev]') or set LOCK_COMPILER" >&2
  exit 2
fi
output=${LOCK_FILE:-requirements/image.txt}

# floxide itself is not locked: the Dockerfile installs it from the source with --no-deps. Local
# wheel directories (PIP_FIND_LINKS) must not leak into the lock.
env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL CUSTOM_COMPILE_COMMAND="scripts/lock-image.sh" \
  "$pip_compile" --quiet --generate-hashes --extra operator --extra ui --extra otel --all-build-deps --strip-extras \
  --unsafe-package floxide --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file "$output" "$@" pyproject.toml

# pip-compile closes with a warning that floxide is unpinned: say instead why that is right.
python3 - "$output" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
text = re.sub(r"\n# WARNING: The following packages were not pinned.*\Z", "\n", text, flags=re.S)
text = text.rstrip("\n") + "\n\n# floxide itself is installed from its source with --no-deps (see the Dockerfile).\n"
open(path, "w", encoding="utf-8").write(text)
PY
echo "wrote $output"
