#!/usr/bin/env bash
# Regenerates the SDK's protobuf and gRPC modules (batchgate/v1/*_pb2*.py)
# from ../proto. CI runs it with the pinned grpcio-tools and fails if the
# committed files differ. Needs: pip install grpcio-tools==1.85.1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
proto=${PROTO:-$here/../proto}
rm -f "$here"/batchgate/v1/*_pb2*.py "$here"/batchgate/v1/*_pb2*.pyi
"$python" -m grpc_tools.protoc -I "$proto" \
  --python_out="$here" --pyi_out="$here" --grpc_python_out="$here" \
  "$proto"/batchgate/v1/*.proto
