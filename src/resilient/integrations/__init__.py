"""Integrations with web frameworks (ASGI) and HTTP clients (httpx)."""
