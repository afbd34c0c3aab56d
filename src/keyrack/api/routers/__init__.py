"""Thin routers: take the dependencies, call one service method, return a schema."""
