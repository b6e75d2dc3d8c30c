"""The load generator: many raw Engine.IO v4 websocket clients per process, several processes.

Each client opens ``/socket.io/?EIO=4&transport=websocket`` with aiohttp, reads the open
packet ``0{...}``, sends ``40{"token": ...}`` (Socket.IO CONNECT with auth), answers each
ping ``2`` with ``3``, and for every ``42["name",{...}]`` records ``time.time_ns()`` and the
event's top-level ``id`` (found by a string search, not a JSON parse: the client has to be
much cheaper than the server it measures; every 500th frame is also parsed in full to check
the shortcut). Nothing else happens on the hot path.

A worker process is driven by its parent over a ``multiprocessing`` pipe:
``("status",)`` → ``{"connected", "failed", "closed", "received", "cpu"}``; ``("stop",)`` →
the same plus every client's ``(ids, times)`` arrays; the worker then exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from array import array
from multiprocessing.connection import Connection

import aiohttp

CHECK_EVERY = 500  # frames between full JSON parses that check the id shortcut


def raise_nofile(target: int = 65536) -> int:
    """Lift RLIMIT_NOFILE's soft limit towards ``target`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process, from /proc (clock ticks → seconds)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Worker:
    def __init__(self, url: str, tokens: list[str], connect_concurrency: int):
        self.url = url
        self.tokens = tokens
        self.sem = asyncio.Semaphore(connect_concurrency)
        self.ids = [array("q") for _ in tokens]
        self.times = [array("q") for _ in tokens]
        self.ok = bytearray(len(tokens))  # 1 once the client's CONNECT was acknowledged
        self.connected = 0
        self.failed = 0
        self.closed = 0
        self.received = 0
        self.check_failures = 0
        self.errors: dict[str, int] = {}
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    def _error(self, what: str) -> None:
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1

    async def client(self, session: aiohttp.ClientSession, index: int) -> None:
        async with self.sem:
            try:
                ws = await session.ws_connect(self.url, autoping=False, autoclose=True, max_msg_size=0,
                                              compress=0, timeout=aiohttp.ClientWSTimeout(ws_close=2))
            except Exception as exc:  # refused, reset, timeout: counted, never retried
                self._error(f"ws_connect: {type(exc).__name__}")
                return
            try:
                opened = await asyncio.wait_for(ws.receive(), 30)
                if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
                    self._error(f"open packet: {opened.type.name}")
                    await ws.close()
                    return
                await ws.send_str("40" + json.dumps({"token": self.tokens[index]}))
                ack = await asyncio.wait_for(ws.receive(), 30)
                if ack.type != aiohttp.WSMsgType.TEXT or not ack.data.startswith("40"):
                    self._error(f"connect refused: {str(ack.data)[:80]}")
                    await ws.close()
                    return
            except Exception as exc:
                self._error(f"handshake: {type(exc).__name__}")
                await ws.close()
                return
            self.connected += 1
            self.ok[index] = 1
            self.sockets.append(ws)
        await self.receive(ws, index)

    async def receive(self, ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        ids, times = self.ids[index], self.times[index]
        text = aiohttp.WSMsgType.TEXT
        now = time.time_ns
        while True:
            msg = await ws.receive()
            if msg.type is not text:
                break
            data = msg.data
            if data.startswith("42"):
                at = now()
                k = data.index('"id":')
                event_id = int(data[k + 5:data.index(",", k + 5)])
                ids.append(event_id)
                times.append(at)
                self.received += 1
                if self.received % CHECK_EVERY == 0 and json.loads(data[2:])[1]["id"] != event_id:
                    self.check_failures += 1
            elif data == "2":
                await ws.send_str("3")
        self.closed += 1

    def status(self) -> dict:
        return {"connected": self.connected, "failed": self.failed, "closed": self.closed,
                "received": self.received, "check_failures": self.check_failures,
                "errors": self.errors, "cpu": cpu_seconds(), "rss_kib": rss_kib()}


def worker_main(pipe: Connection, url: str, tokens: list[str], connect_concurrency: int = 64) -> None:
    """Entry point of one generator process (multiprocessing target)."""
    raise_nofile()
    try:
        import uvloop  # the lighter loop: the generator must not be what is measured
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_serve(pipe, url, tokens, connect_concurrency))


async def _serve(pipe: Connection, url: str, tokens: list[str], connect_concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(url, tokens, connect_concurrency)
    stop = asyncio.Event()

    def on_command() -> None:
        try:
            command = pipe.recv()
        except EOFError:
            command = ("stop",)
        if command[0] == "status":
            pipe.send(worker.status())
        elif command[0] == "stop":
            loop.remove_reader(pipe.fileno())
            stop.set()

    loop.add_reader(pipe.fileno(), on_command)
    os.set_blocking(pipe.fileno(), True)  # uvloop made it non-blocking; replies may exceed the pipe buffer
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [loop.create_task(worker.client(session, i)) for i in range(len(tokens))]
        await stop.wait()
        status = worker.status()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in worker.sockets), return_exceptions=True)
    os.set_blocking(pipe.fileno(), True)
    status["ok"] = bytes(worker.ok)
    status["ids"] = [a.tobytes() for a in worker.ids]
    status["times"] = [a.tobytes() for a in worker.times]
    pipe.send(status)
