"""Confidential inference against bare ONNX Runtime and a plain model server.

Run ``PYTHONPATH=src:. .venv/bin/python -m benchmarks.inference`` (``--quick``
for the small CI variant); see docs/performance.md.
"""
