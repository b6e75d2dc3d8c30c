"""Typed keys for the objects the aiohttp app shares between its parts."""

from __future__ import annotations

import asyncio

import socketio
from aiohttp import web
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import Engine

from bot.settings import Settings
from bot.waitlist import Waitlist

from .handlers import SocketHandlers
from .hub import Hub
from .listener import OutboxListener
from .stats import Stats

SETTINGS = web.AppKey("settings", Settings)
NODE_ID = web.AppKey("node_id", str)
SIO = web.AppKey("sio", socketio.AsyncServer)
HUB = web.AppKey("hub", Hub)
STATS = web.AppKey("stats", Stats)
LISTENER = web.AppKey("listener", OutboxListener)
POOL = web.AppKey("pool", AsyncConnectionPool)
HANDLERS = web.AppKey("handlers", SocketHandlers)
ENGINE = web.AppKey("api_engine", Engine)  # SQLAlchemy: the REST API and staff sessions (sync.api)
WAITLIST = web.AppKey("api_waitlist", Waitlist)  # the REST API's waitlist (sync.api_waitlist), on ENGINE
REMINDER_WAKE = web.AppKey("reminder_wake", asyncio.Event)  # set: a visit changed, look for reminders now
WAITLIST_WAKE = web.AppKey("waitlist_wake", asyncio.Event)  # set: time may be free, offer it now
