"""Bare aiohttp baseline for the ingest benchmark.

POST /webhook parses the JSON body and answers 200 {"status": "ok"}; nothing else:
no validation, no storage, no logging. It is the ceiling the receiver is compared with.

Usage: python bench/bare_handler.py --host 127.0.0.1 --port 18080
"""

from __future__ import annotations

import argparse

from aiohttp import web

OK_BODY = b'{"status":"ok"}'


async def webhook(request: web.Request) -> web.Response:
    await request.json()
    return web.Response(body=OK_BODY, content_type="application/json")


def make_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhook", webhook)
    return app


def handler_args(description: str | None, db: bool = False) -> argparse.Namespace:
    """The options of a benchmark handler: where to listen, and with ``db`` its SQLite file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if db:
        parser.add_argument("--db", metavar="PATH", required=True, help="SQLite file to write")
    return parser.parse_args()


def serve(app: web.Application, args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM; no access log, nothing printed."""
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


def main() -> None:
    serve(make_app(), handler_args(__doc__))


if __name__ == "__main__":
    main()
