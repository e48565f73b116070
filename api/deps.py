"""Typed dependencies (`Annotated`), resolved from the app's state built in `create_app`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine
from temporalio.client import Client

from runtime.cluster import connect_client
from runtime.observability import CorrelationInterceptor
from runtime.settings import Settings


class TemporalConnector:
    """Connects on first use and keeps the client; a Temporal outage answers 503, never 500."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        if client is not None and not any(isinstance(i, CorrelationInterceptor) for i in client.config()["interceptors"]):
            config = client.config()
            config["interceptors"] = [*config["interceptors"], CorrelationInterceptor()]
            client = Client(**config)
        self._client = client
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    # the same address, namespace, TLS / mTLS / API key and interceptors as the worker
                    self._client = await connect_client(self.settings)
                except Exception as exc:  # connection refused, DNS, TLS...
                    raise HTTPException(503, f"Temporal at {self.settings.temporal_address} is unavailable: {exc}") from exc
        return self._client


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_client(request: Request) -> Client:
    return await request.app.state.temporal.get()


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClientDep = Annotated[Client, Depends(get_client)]
