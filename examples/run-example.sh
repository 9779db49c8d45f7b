#!/usr/bin/env bash
# make example: run examples/sentiment with the freshly built ./pipe. A
# second `make example` finds every stage fresh and runs nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/examples/sentiment"
"$root/pipe" validate
"$root/pipe" dag
"$root/pipe" run
echo "--- pipe status"
"$root/pipe" status
