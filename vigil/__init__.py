"""Vigil: real-time analytics and fraud detection for multi-tenant e-commerce, on Apache Flink."""

__version__ = "0.1.0"
