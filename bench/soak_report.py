"""What ``soak.py`` makes of its phases: every dashboard's events checked against the outbox,
commit → receive latency, memory trends, the plots and the markdown of the ``soak`` section.

A phase is the dict ``soak.run_phase`` returns: ``kind`` (``ours``: the sync service and the action
server's cache; ``naive``: ``bench/naive_server.py`` and ``AVAILABILITY_SOURCE=sql``), the samples,
the clients' received ids and times, the outbox rows of the load, the writer's commit times.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.common import pct, plot_latency

SERVICES = ("realtime", "actions", "rasa")  # "realtime": the sync service, or the naive server
FLAT_PER_HOUR, NOISE_MIB = 0.05, 1.0  # a trend: > 5 % of the mean RSS per hour, and > 1 MiB over the half
TITLES = {"ours": "ours: sync service + the action server's cache",
          "naive": "naive baseline: naive_server.py + AVAILABILITY_SOURCE=sql"}


def service_name(kind: str, name: str) -> str:
    return {"realtime": "sync" if kind == "ours" else "naive server", "actions": "action server",
            "rasa": "Rasa"}[name]


def compare(expected: list[int], got: list[int]) -> dict:
    """Counts, and the ids missing from ``got`` (``lost_ids``)."""
    want, seen = set(expected), set()
    dup = unexpected = disorder = 0
    last = 0
    for i in got:
        if i in seen:
            dup += 1
        elif i not in want:
            unexpected += 1
        seen.add(i)
        if i < last:
            disorder += 1
        last = max(last, i)
    return {"expected": len(expected), "received": len(got), "lost": len(want - seen), "duplicates": dup,
            "unexpected": unexpected, "out_of_order": disorder, "lost_ids": sorted(want - seen)}


def trend(samples: list[dict], name: str) -> dict:
    import numpy as np

    half = samples[len(samples) // 2:]
    t = np.array([s["t"] for s in half])
    mib = np.array([s["rss"][name] / 1024 for s in half])
    slope, intercept = np.polyfit(t, mib, 1) if len(half) >= 2 else (0.0, float(mib[0]))
    change = slope * (t[-1] - t[0])
    mean = float(mib.mean())
    flat = abs(slope * 3600) < FLAT_PER_HOUR * mean or abs(change) < NOISE_MIB
    return {"slope_mib_per_h": slope * 3600, "change_mib": change, "mean_mib": mean, "flat": bool(flat),
            "first_mib": samples[0]["rss"][name] / 1024, "max_mib": max(s["rss"][name] for s in samples) / 1024,
            "last_mib": samples[-1]["rss"][name] / 1024, "intercept": intercept, "t0": float(t[0]),
            "t1": float(t[-1])}


def score(phase: dict) -> dict:
    """Delivery (lost, duplicate, unexpected, out of order per client), the lost events described,
    commit → receive latency of the writer's events, memory trends, CPU shares, chat figures."""
    import numpy as np

    totals = {"expected": 0, "received": 0, "lost": 0, "duplicates": 0, "unexpected": 0, "out_of_order": 0}
    complete = 0
    missed: dict[int, list[str]] = {}  # lost event id → the clients that missed it
    # commit time (ns) of every outbox row the writer's statements wrote, by outbox id
    commit = {i: phase["committed"][xmin] for i, (_, _, _, xmin) in phase["outbox"].items()
              if xmin in phase["committed"]}
    ids_sorted = np.array(sorted(commit), dtype=np.int64)
    commit_ns = np.array([commit[i] for i in ids_sorted.tolist()], dtype=np.int64)
    latencies = []
    for (role, ident), want, (ids, times) in zip(phase["labels"], phase["expected"], phase["got"]):
        c = compare(want, ids.tolist())
        for key in totals:
            totals[key] += c[key]
        complete += not (c["lost"] or c["duplicates"] or c["unexpected"] or c["out_of_order"])
        for i in c["lost_ids"]:
            missed.setdefault(i, []).append(f"{role}:{ident}")
        if ids.size and ids_sorted.size:
            at = np.clip(np.searchsorted(ids_sorted, ids), 0, ids_sorted.size - 1)
            known = ids_sorted[at] == ids
            latencies.append((times[known] - commit_ns[at[known]]) / 1e6)
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    lost_events = []
    for i, who in sorted(missed.items()):
        kind, dentist, at, _ = phase["outbox"].get(i, ("?", None, None, None))
        lost_events.append({"id": i, "type": kind, "dentist_id": dentist, "clients": len(who),
                            "roles": sorted({w.split(":")[0] for w in who}),
                            "seconds_into_load": None if at is None
                            else round((at - phase["t_load_wall"]).total_seconds(), 1)})
    trends = {name: trend(phase["samples"], name) for name in SERVICES}
    turns = [ms for _, ms in phase["chat"].turns]
    delivered = not (totals["lost"] or totals["duplicates"] or totals["unexpected"] or totals["out_of_order"])
    return {
        "totals": totals, "complete": complete, "lost_events": lost_events, "trends": trends,
        "latency_ms": lat, "latency_events": int(ids_sorted.size),
        "cpu_share": {name: phase["cpu"][name] / phase["load_seconds"] for name in SERVICES},
        "turns": turns, "turn_p50": statistics.median(turns) if turns else 0.0,
        "turn_p95": pct(turns, 95) if turns else 0.0,
        "ok": (not phase["writer"].error and not phase["chat"].errors and delivered
               and phase["connected"] == len(phase["labels"]) and phase["cache"]["last_event_id"] >= phase["head"]
               and all(t["flat"] for t in trends.values())),
    }


def plot_memory(phases: list[dict], scores: list[dict], path: Path) -> Path:
    """RSS of each service over each phase's load (the fit over its second half dashed), chat turns below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SERVICES) + 1, 1, figsize=(10, 10), sharex=True,
                             gridspec_kw={"height_ratios": [2] * len(SERVICES) + [1.6]})
    colours = {"ours": "tab:blue", "naive": "tab:red"}
    for phase, sc in zip(phases, scores):
        kind, samples = phase["kind"], phase["samples"]
        minutes = [s["t"] / 60 for s in samples]
        for ax, name in zip(axes, SERVICES):
            tr = sc["trends"][name]
            ax.plot(minutes, [s["rss"][name] / 1024 for s in samples], "o-", ms=2.5, lw=1, color=colours[kind],
                    label=f"{kind}: {service_name(kind, name)}; fit {tr['slope_mib_per_h']:+.1f} MiB/h "
                          f"({100 * tr['slope_mib_per_h'] / tr['mean_mib']:+.1f} %/h)")
            xs = [tr["t0"], tr["t1"]]
            ax.plot([x / 60 for x in xs], [tr["intercept"] + tr["slope_mib_per_h"] / 3600 * x for x in xs], "--",
                    color="black", lw=1)
        turns = phase["chat"].turns
        axes[-1].plot([t / 60 for t, _ in turns], [ms for _, ms in turns], ".", ms=3, color=colours[kind],
                      label=f"{kind}: p50 {sc['turn_p50']:.0f} ms, p95 {sc['turn_p95']:.0f} ms")
    middle = phases[0]["samples"][len(phases[0]["samples"]) // 2]["t"] / 60
    for ax, name in zip(axes, SERVICES):
        ax.axvline(middle, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(f"{'sync / naive' if name == 'realtime' else service_name('ours', name)} RSS (MiB)")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.grid(True, alpha=0.25)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_title("Soak: RSS of each service's process tree, each phase on its own clock\n"
                      "(dashed: least-squares fit over the second half; dotted: where that half starts)", fontsize=10)
    bx = axes[-1]
    bx.set_yscale("log")
    bx.set_ylabel("chat turn (ms, log)")
    bx.set_xlabel("minutes into the phase's load")
    bx.grid(True, which="both", alpha=0.25)
    bx.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_latencies(phases: list[dict], scores: list[dict], path: Path) -> Path:
    return plot_latency(
        path,
        [("dashboards: commit → client receive\n(the writer's events, every recipient)",
          {p["kind"]: s["latency_ms"].tolist() for p, s in zip(phases, scores)}),
         ("chat turns (3 users through Rasa's REST channel)", {p["kind"]: s["turns"] for p, s in zip(phases, scores)})],
        title="Soak: latency distributions, ours vs the naive baseline, same load", unit="latency",
        same_scale=False)


def _ms(values, q: float) -> str:
    import numpy as np

    return f"{float(np.percentile(values, q)):.1f}" if len(values) else "–"


def _ratio(naive: float, ours: float, digits: int = 2) -> str:
    return f"{naive / ours:.{digits}f}×" if ours else "–"


def phase_lines(phase: dict, sc: dict, args) -> list[str]:
    """One phase's load, memory table and delivery."""
    kind, writer, chat, t = phase["kind"], phase["writer"], phase["chat"], sc["totals"]
    server = phase["server"]
    lines = [
        f"#### {TITLES[kind]}",
        "",
        f"- Load {phase['load_seconds'] / 60:.1f} min from {phase['started']}, RSS sampled every "
        f"{args.sample_seconds:g} s ({len(phase['samples'])} samples); 1-minute load average during it "
        f"{min(float(x['load'].split()[0]) for x in phase['samples']):.2f}–"
        f"{max(float(x['load'].split()[0]) for x in phase['samples']):.2f} (the soak's own processes included)",
        f"- SQL writer at {args.rate:g} writes/s ({', '.join(f'{v} {k}' for k, v in sorted(writer.counts.items()))};"
        f" at most {writer.behind_max * 1000:.0f} ms behind schedule); {phase['connected']}/{len(phase['labels'])} "
        f"dashboards; {args.chat_users} chat users: {chat.conversations} conversations, {chat.booked} booked, "
        f"{len(sc['turns'])} turns, p50 {sc['turn_p50']:.0f} ms, p95 {sc['turn_p95']:.0f} ms",
        "",
        "| service | RSS first sample (MiB) | RSS last (MiB) | RSS max (MiB) | slope over the second half (MiB/h) "
        "| slope (% of mean RSS per hour) | fitted change over the second half (MiB) | trend "
        "| CPU (share of a core) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in SERVICES:
        tr = sc["trends"][name]
        lines.append(f"| {service_name(kind, name)} | {tr['first_mib']:.1f} | {tr['last_mib']:.1f} "
                     f"| {tr['max_mib']:.1f} | {tr['slope_mib_per_h']:+.1f} "
                     f"| {100 * tr['slope_mib_per_h'] / tr['mean_mib']:+.1f} % | {tr['change_mib']:+.2f} "
                     f"| {'flat' if tr['flat'] else '**growing**' if tr['change_mib'] > 0 else 'shrinking'} "
                     f"| {sc['cpu_share'][name]:.2f} |")
    lines += [
        "",
        f"Events: {phase['head'] - phase['head0']:,} outbox rows during the load; dashboards received "
        f"{t['received']:,} of {t['expected']:,} expected frames: lost {t['lost']}, duplicate {t['duplicates']}, "
        f"unexpected {t['unexpected']}, out of order {t['out_of_order']}; {sc['complete']}/{len(phase['labels'])} "
        f"clients complete; {phase['closed']} connections closed before the end. The action server's cache applied "
        f"events up to id {phase['cache']['last_event_id']} (outbox head {phase['head']}); "
        f"{phase['cache'].get('events_failed', 0)} failed."
        + (f" The sync service's counters: {server.get('listener', {}).get('gapsSkipped', '?')} outbox ids skipped "
           f"as never committed, {server.get('slowClientsDropped', '?')} slow clients dropped, "
           f"{server.get('eventsFailed', '?')} events failed." if kind == "ours" else ""),
    ]
    if sc["lost_events"]:
        lines.append(f"Lost events: {len(sc['lost_events'])} distinct ids missed by at least one client; the first "
                     "ones: " + "; ".join(
                         f"#{e['id']} {e['type']} (dentist {e['dentist_id']}, {e['seconds_into_load']} s into the "
                         f"load) missed by {e['clients']} {'/'.join(e['roles'])} client(s)"
                         for e in sc["lost_events"][:8]) + " (all of them in bench/out/soak.json).")
    lines.append(f"Errors: writer {writer.error or 'none'}; chat {len(chat.errors)}"
                 + (f" (first: {chat.errors[0]})" if chat.errors else "") + ".")
    return lines


def side_by_side(phases: list[dict], scores: list[dict]) -> list[str]:
    """The two phases in one table, with naive ÷ ours."""
    by = {p["kind"]: (p, s) for p, s in zip(phases, scores)}
    (po, so), (pn, sn) = by["ours"], by["naive"]

    def delivery(p, s) -> str:
        t = s["totals"]
        return (f"{t['received']:,} of {t['expected']:,}; lost {t['lost']}, dup {t['duplicates']}, unexpected "
                f"{t['unexpected']}, out of order {t['out_of_order']}; {s['complete']}/{len(p['labels'])} clients "
                "complete")

    lo, ln = so["latency_ms"], sn["latency_ms"]
    import numpy as np

    rows = [
        ("dashboard frames received of expected", delivery(po, so), delivery(pn, sn), "–"),
        (f"commit → dashboard receive p50 / p99 / max, ms ({so['latency_events']:,} / {sn['latency_events']:,} "
         "writer events, every recipient)",
         f"{_ms(lo, 50)} / {_ms(lo, 99)} / {_ms(lo, 100)}", f"{_ms(ln, 50)} / {_ms(ln, 99)} / {_ms(ln, 100)}",
         (f"{_ratio(np.percentile(ln, 50), np.percentile(lo, 50))} / "
          f"{_ratio(np.percentile(ln, 99), np.percentile(lo, 99))}") if lo.size and ln.size else "–"),
        ("chat turn p50 / p95, ms", f"{so['turn_p50']:.0f} / {so['turn_p95']:.0f}",
         f"{sn['turn_p50']:.0f} / {sn['turn_p95']:.0f}",
         f"{_ratio(sn['turn_p50'], so['turn_p50'])} / {_ratio(sn['turn_p95'], so['turn_p95'])}"),
        ("chat conversations (booked), errors", f"{po['chat'].conversations} ({po['chat'].booked}), "
         f"{len(po['chat'].errors)}", f"{pn['chat'].conversations} ({pn['chat'].booked}), {len(pn['chat'].errors)}",
         "–"),
    ]
    for name in SERVICES:
        rows.append((f"CPU, share of a core: {service_name('ours', name)} / {service_name('naive', name)}"
                     if name == "realtime" else f"CPU, share of a core: {service_name('ours', name)}",
                     f"{so['cpu_share'][name]:.3f}", f"{sn['cpu_share'][name]:.3f}",
                     _ratio(sn["cpu_share"][name], so["cpu_share"][name])))
    for name in SERVICES:
        to, tn = so["trends"][name], sn["trends"][name]
        rows.append((f"RSS last (MiB), slope over the second half (MiB/h): "
                     f"{service_name('ours', name)}{' / ' + service_name('naive', name) if name == 'realtime' else ''}",
                     f"{to['last_mib']:.1f}, {to['slope_mib_per_h']:+.1f} ({'flat' if to['flat'] else 'trend'})",
                     f"{tn['last_mib']:.1f}, {tn['slope_mib_per_h']:+.1f} ({'flat' if tn['flat'] else 'trend'})",
                     _ratio(tn["last_mib"], to["last_mib"])))
    return ["| | ours | naive baseline | naive ÷ ours |", "|---|---|---|---:|",
            *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)]
