"""A real v2 model for the kserve check and bench/oip.sh: y = 2x, for any
rows of FP32. Served twice: `double` with MLServer's adaptive batching
off (batchgate batches in front of it), `double_batched` with it on."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Double(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", x * 2)])
