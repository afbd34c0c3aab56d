"""Wire models (pydantic only), shared by the HTTP API, the CLI and the SDK.

May import ``keyrack.domain`` (for bounds and enums) and ``keyrack.errors``, nothing else of ours.
"""
