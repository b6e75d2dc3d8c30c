"""Realtime benchmark: commit → client receive latency, delivery counts, server CPU and RSS,
for the sync service and a naive LISTEN → ``sio.emit`` loop measured in the same run."""
