"""Writes a gRPC-framed ModelInferRequest for h2load: one 16-byte BYTES input."""

import struct
import sys

from mlserver.grpc import dataplane_pb2 as pb

request = pb.ModelInferRequest(
    model_name="echo",
    inputs=[
        pb.ModelInferRequest.InferInputTensor(
            name="x",
            datatype="BYTES",
            shape=[1],
            contents=pb.InferTensorContents(bytes_contents=[b"x" * 16]),
        )
    ],
)
data = request.SerializeToString()
sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(data)) + data)
