"""``python -m actions``: the action server (rasa-sdk + availability cache + sync client).

Environment: DATABASE_URL, JWT_SECRET (or SERVICE_TOKEN), SYNC_URL (or SYNC_PORT),
ACTIONS_PORT (default 5055), CACHE_DAYS, AVAILABILITY_SOURCE (cache | sql), LOG_LEVEL.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    doc = __doc__.split("\n\n", 1)
    argparse.ArgumentParser(prog="python -m actions", description=doc[0], epilog=doc[1]).parse_args(argv)
    # configured before the settings are read, so that their own warnings are formatted too
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"actions: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level.upper())
    from .server import run

    run(settings)
    return 0


if __name__ == "__main__":  # rasa-sdk imports this module too: only run when executed
    sys.exit(main())
