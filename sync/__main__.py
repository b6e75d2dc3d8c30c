"""``python -m sync [--port N] [--host H]``: run the realtime sync service."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from bot.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SYNC_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=None, help="default: SYNC_PORT (5000)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"sync: configuration error: {exc}", file=sys.stderr)
        return 2
    from . import serving
    from .app import create_app

    port = args.port or settings.sync_port
    app = create_app(settings)
    logging.getLogger("sync").info("realtime sync listening on %s:%d (redis: %s)", args.host, port,
                                   "on" if settings.redis_url else "off")
    serving.run(app, host=args.host, port=port, shutdown_timeout=5.0, loop=_event_loop())
    return 0


def _event_loop():
    """uvloop's event loop (faster fan-out and smaller transports); SYNC_UVLOOP=0 for asyncio's."""
    if os.environ.get("SYNC_UVLOOP", "1") == "0":
        return None
    import uvloop

    return uvloop.new_event_loop()


if __name__ == "__main__":
    sys.exit(main())
