"""Build a modified copy of the sync service outside the repository, to measure a change first.

``python -m bench.realtime.prototypes direct+uvloop /tmp/protos`` copies ``sync/``, ``bot/`` and
``sql/`` to ``/tmp/protos/direct+uvloop`` and applies each named change (``direct``: the hub writes
each event's pre-built websocket frame straight onto the transport; ``uvloop``: uvloop's event loop).
Then: ``bench/run_all.sh --servers ours,proto --proto-root /tmp/protos/direct+uvloop``.
Nothing in ``sync/`` is modified; the text replacements fail loudly when ``sync/`` has moved on.
"""
import shutil
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
OUT = Path("/tmp/protos")


def fresh(name):
    dst = OUT / name
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for d in ("sync", "bot", "sql"):
        shutil.copytree(SRC / d, dst / d, ignore=shutil.ignore_patterns("__pycache__"))
    return dst

def sub(path, old, new):
    s = path.read_text()
    assert old in s, (path, old[:60])
    path.write_text(s.replace(old, new, 1))

def uvloop(dst):
    sub(dst / "sync/__main__.py", "    web.run_app(app,", "    import uvloop  # PROTOTYPE: uvloop's event loop (pinned in app.lock already)\n    uvloop.install()\n    web.run_app(app,")

def direct(dst):
    sub(dst / "sync/outbox.py", "def _encode(name: str, body: str) -> eio_packet.Packet:", '''def ws_frame(packet: eio_packet.Packet) -> bytes:
    """PROTOTYPE: the whole websocket text frame (server to client: unmasked), built once per event."""
    payload = packet.encode().encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


def _encode(name: str, body: str) -> eio_packet.Packet:''')
    sub(dst / "sync/outbox.py", "    _redacted: eio_packet.Packet | None = field(default=None, repr=False)\n", '''    _redacted: eio_packet.Packet | None = field(default=None, repr=False)
    _frames: dict = field(default_factory=dict, repr=False)

    def frame(self, redacted: bool = False) -> bytes:
        frame = self._frames.get(redacted)
        if frame is None:
            frame = self._frames[redacted] = ws_frame(self.packet(redacted))
        return frame
''')
    sub(dst / "sync/hub.py", "        return self._put(client, ev.packet(rooms.redacted_for(client.who, ev)))", '''        redacted = rooms.redacted_for(client.who, ev)
        # PROTOTYPE: the shared frame straight onto the transport when engine.io holds nothing
        # for this socket (its queue is empty and its writer has finished what it took)
        sock = self.sio.eio.sockets.get(client.eio_sid)
        if sock is None or sock.closed or sock.closing:
            return False
        ws = getattr(sock, "proto_ws", None)
        if ws is not None and sock.upgraded and not sock.queue._unfinished_tasks and ws._sock is not None:
            writer = ws._sock._writer
            transport = writer.transport if writer is not None else None
            if transport is not None and not transport.is_closing():
                if transport.get_write_buffer_size() > 4 * 1024 * 1024:
                    self.stats.clients_dropped_slow += 1
                    client.pending = True
                    asyncio.get_running_loop().create_task(self.sio.disconnect(client.sid))
                    return False
                transport.write(ev.frame(redacted))
                self.stats.direct_writes = getattr(self.stats, "direct_writes", 0) + 1
                return True
        return self._put(client, ev.packet(redacted))''')
    sub(dst / "sync/app.py", "\ndef create_app(", '''
from engineio import async_socket as _eio_socket

_orig_ws_handler = _eio_socket.AsyncSocket._websocket_handler


async def _ws_handler(self, ws):  # PROTOTYPE: keep the websocket so the hub can write frames itself
    self.proto_ws = ws
    return await _orig_ws_handler(self, ws)


_eio_socket.AsyncSocket._websocket_handler = _ws_handler


def create_app(''')

if __name__ == "__main__":
    if len(sys.argv) > 2:
        OUT = Path(sys.argv[2])
    variant = sys.argv[1]
    dst = fresh(variant)
    for step in variant.split("+"):
        globals()[step](dst)
    print(dst)
