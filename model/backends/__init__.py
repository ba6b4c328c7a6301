"""Predictor backends; each is imported only when an artifact needs it (the ONNX one never imports torch)."""
