#!/usr/bin/env bash
# Generates the Python stubs from proto/ into examples/python/gen.
# Needs: pip install grpcio grpcio-tools
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
rm -rf "$here/gen"
mkdir -p "$here/gen"
"$python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$here/gen" --pyi_out="$here/gen" --grpc_python_out="$here/gen" \
  "$root"/proto/batchgate/v1/*.proto
echo "stubs in $here/gen (add it to PYTHONPATH)"
