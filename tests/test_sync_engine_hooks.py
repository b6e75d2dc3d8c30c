"""The private parts of python-engineio (sync/engine.py) and python-socketio (sync/server.py) that
the sync service overrides or calls: a new release that renames, removes or re-shapes one of them
fails here, by name, instead of breaking sessions at run time; and the seam around it: the hub picks recipients without looking at a socket, an outbox event
is plain data."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import inspect
import re
from pathlib import Path

import engineio
import pytest
import socketio
from engineio import async_socket, base_server
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from sync import engine, outbox, server

ROOT = Path(__file__).resolve().parent.parent
OWNERS = {"AsyncServer": engineio.AsyncServer, "BaseServer": base_server.BaseServer,
          "AsyncSocket": async_socket.AsyncSocket, "socketio.AsyncServer": socketio.AsyncServer}
OVERRIDES = {"AsyncServer": engine.LeanEngine, "BaseServer": engine.LeanEngine,
             "AsyncSocket": engine.LeanSocket, "socketio.AsyncServer": server.SocketServer}
# (owner, name) -> signature, or None for an attribute the engine.io server sets: both lists in one
HOOKS = {**engine.PRIVATE_HOOKS, **{("socketio.AsyncServer", name): signature
                                    for name, signature in server.PRIVATE_HOOKS.items()}}


def test_the_installed_python_engineio_is_the_minor_the_engine_follows():
    installed = importlib.metadata.version("python-engineio")
    assert Version(installed).release[:2] == Version(engine.ENGINEIO_VERSION).release[:2], (
        f"python-engineio {installed} is installed; sync/engine.py follows {engine.ENGINEIO_VERSION}")


def test_python_engineio_is_pinned_directly_to_that_minor():
    pins = [line.split("#")[0].strip() for path in sorted((ROOT / "requirements").glob("*.in"))
            for line in path.read_text().splitlines() if re.match(r"python-engineio\b", line)]
    assert pins, "python-engineio must be a direct requirement, not only a lock-file entry"
    minor = Version(engine.ENGINEIO_VERSION)
    for pin in pins:
        allowed = SpecifierSet(pin[len("python-engineio"):])
        assert f"{minor}.0" in allowed and f"{minor}.99" in allowed
        assert f"{minor.major}.{minor.minor + 1}.0" not in allowed
        assert f"{minor.major}.{minor.minor - 1}.99" not in allowed


@pytest.mark.parametrize("owner, name", sorted(HOOKS))
def test_each_private_hook_is_there_with_the_signature_the_service_relies_on(owner, name):
    expected = HOOKS[(owner, name)]
    if expected is None:  # an attribute engine.io's server sets in its constructor
        assert hasattr(engineio.AsyncServer(async_mode="aiohttp"), name), (
            f"python-engineio's server no longer sets {name}: sync/engine.py must follow")
        return
    hook = getattr(OWNERS[owner], name, None)
    assert hook is not None, f"{owner}.{name} is gone: sync/engine.py or sync/server.py must follow"
    assert str(inspect.signature(hook)) == expected, f"{owner}.{name} changed its signature"
    override = getattr(OVERRIDES[owner], name)
    if override is not hook:  # overridden here: it must still take what engine.io passes
        assert inspect.signature(override).parameters.keys() == inspect.signature(hook).parameters.keys()


def test_the_engine_uses_no_other_private_name_of_engine_io():
    source = (ROOT / "sync/engine.py").read_text()
    used = set(re.findall(r"\b(?:self|sock|server)\.(_[a-z]\w*)", source))
    own = set(re.findall(r"\bself\.(_[a-z]\w*)(?:: [^=]+)? = ", source)) | set(re.findall(r"def (_[a-z]\w*)", source))
    hooks = {name for _, name in engine.PRIVATE_HOOKS}
    assert used - own - hooks == set(), "a private engine.io name used but not listed in PRIVATE_HOOKS"


def _imported_and_attributes(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return modules, attributes


def test_the_hub_chooses_recipients_without_looking_at_a_socket():
    modules, attributes = _imported_and_attributes(ROOT / "sync/hub.py")
    assert not any(m.split(".")[0] in ("engineio", "socketio") for m in modules)
    assert not {"sockets", "queue", "eio", "write_frame", "transport_write"} & attributes
    assert "isinstance" not in (ROOT / "sync/hub.py").read_text()


def test_an_outbox_event_is_plain_data():
    modules, _ = _imported_and_attributes(ROOT / "sync/outbox.py")
    assert not any(m.split(".")[0] in ("engineio", "socketio") or m.endswith("frames") for m in modules)
    kinds = {f.name: f.type for f in dataclasses.fields(outbox.OutboxEvent)}
    assert set(kinds) == {"id", "type", "dentist_id", "patient_id", "prev_dentist_id", "prev_patient_id",
                          "created_at", "body", "left_body", "entered_body"}
