"""A trivial MLServer model for the peer benchmark: returns its inputs."""

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="y", shape=i.shape, datatype=i.datatype, data=i.data)
                for i in payload.inputs
            ],
        )
