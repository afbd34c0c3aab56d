"""keyrack: API keys for multi-tenant platforms, verified in microseconds."""

__version__ = "0.1.0"
