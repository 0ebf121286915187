"""The ONNX Runtime export step: onnxruntime-genai's model builder, separate .onnx_adapter files, token parity."""
