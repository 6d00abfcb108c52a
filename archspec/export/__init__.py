"""Export: TorchScript, torch.export and ONNX artifacts of a spec's module, and their verification.

Everything here imports torch; the static front end never imports this package.
"""
