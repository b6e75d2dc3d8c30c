"""``python -m sync [--port N] [--host H]``: run the realtime sync service."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.settings import Settings, SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync", description=__doc__)
    parser.add_argument("--host", default=None, help="default: SYNC_HOST (0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="default: SYNC_PORT (5000)")
    parser.add_argument("--log-level", default=None, help="default: LOG_LEVEL (INFO)")
    args = parser.parse_args(argv)
    # configured before the settings are read, so that their own warnings are formatted too
    logging.basicConfig(level=(args.log_level or "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"sync: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel((args.log_level or settings.log_level).upper())
    from . import serving
    from .app import create_app

    host, port = args.host or settings.sync_host, args.port or settings.sync_port
    app = create_app(settings)
    logging.getLogger("sync").info("realtime sync listening on %s:%d (redis: %s)", host, port,
                                   "on" if settings.redis_url else "off")
    serving.run(app, host=host, port=port, shutdown_timeout=5.0, loop=_event_loop(settings))
    return 0


def _event_loop(settings: Settings):
    """uvloop's event loop (faster fan-out and smaller transports); SYNC_UVLOOP=0 for asyncio's."""
    if not settings.sync_uvloop:
        return None
    import uvloop

    return uvloop.new_event_loop()


if __name__ == "__main__":
    sys.exit(main())
