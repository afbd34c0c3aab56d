"""The HTTP API (FastAPI/Starlette): ``create_app(settings)`` and thin routers over the services.

May import services, schemas, runtime wiring and errors; never the store directly.
"""
