"""Celery apps configured from test settings, and settings pointing at another broker."""

from __future__ import annotations

from celery import Celery

from server.settings import Settings, settings_from_mapping
from server.worker import celery_config


def celery_for(settings: Settings) -> Celery:
    """An app of its own (not the module-level one, which reads the process's settings)."""
    app = Celery("xray-test")
    app.config_from_object(celery_config(settings))
    return app


def with_broker(settings: Settings, url: str) -> Settings:
    return settings_from_mapping(settings.model_dump(mode="json") | {"celery": {"broker_url": url}})
