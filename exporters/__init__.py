"""torch -> ONNX / TFLite exporters, parity checks and the artifact cache."""
