#!/usr/bin/env python3
"""Splits a perf profile of the engine into its components.

Reads `perf script -F comm,period,ip,sym,dso` output (cpu-clock samples
with call stacks) on stdin. Each sample goes to the component of the
innermost frame that names one (a store write's allocations and system
calls count as the store's); a sample whose stack names none goes by its
thread. Prints each component's share of the samples and, given the
events and CPU seconds of the recorded window, its CPU per event.

Components:
  ingress      webhook HTTP server, signature check, parsing (src/ingest)
  bus append   the bus and its writer thread (src/bus)
  actor        conversation actors, their supervisor and mailboxes
               (src/conversation, src/assistant, ractor)
  store write  the store, its writer thread and the store engine's flushes
               and compactions (src/store, fjall, lsm-tree)
  Send API     outbound platform calls (src/channels, the HTTP client)
  metrics      metrics recording and the Prometheus exporter
  runtime      tokio's scheduler, timers and wake-ups with no engine frame
"""
import argparse
import collections
import re
import sys

# First match wins, tried on each frame from the innermost outwards.
RULES = [
    ("metrics", re.compile(r"^(<)?(metrics(_util|_exporter_prometheus)?::|switchboard::telemetry::)")),
    ("ingress", re.compile(r"switchboard::(ingest::|channels::webhook|channels::\w+::webhook)")),
    ("bus append", re.compile(r"switchboard::bus::")),
    ("store write", re.compile(r"switchboard::store::|^<?(fjall|lsm_tree)::")),
    ("Send API", re.compile(r"switchboard::channels::|^<?reqwest::|hyper_util::client|hyper::client")),
    ("actor", re.compile(r"switchboard::(conversation|assistant)::|^<?ractor::")),
    ("ingress", re.compile(r"^<?(axum|tower_http)::|hyper::server|hyper_util::server")),
]
THREADS = {"bus-writer": "bus append", "store-writer": "store write", "fjall:worker": "store write"}
ORDER = ["ingress", "bus append", "actor", "store write", "Send API", "metrics", "runtime", "other"]


def frame(frame_line):
    """(symbol, dso) of "    55d0c1e2 switchboard::bus::append+0x4e (/path/switchboard)"."""
    parts = frame_line.strip().split(" ", 1)
    if len(parts) < 2:
        return "", ""
    sym, _, dso = parts[1].rpartition(" (")
    return re.sub(r"\+0x[0-9a-f]+$", "", sym), dso.rstrip(")")


def classify(comm, frames):
    for sym, _ in frames:
        for component, pattern in RULES:
            if pattern.search(sym):
                return component
    if comm in THREADS:
        return THREADS[comm]
    if comm.startswith("tokio"):
        return "runtime"
    return "other"


def samples(lines):
    header, frames = None, []
    for line in lines:
        if not line.strip():
            if header is not None:
                yield header, frames
            header, frames = None, []
        elif header is None:
            header = line.split()
        else:
            frames.append(frame(line))
    if header is not None:
        yield header, frames


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--events", type=int, required=True, help="customer messages in the window")
    args.add_argument("--cpu-seconds", type=float, required=True, help="engine CPU time in the window")
    args.add_argument("--top", type=int, default=5, help="innermost functions listed per component")
    opts = args.parse_args()

    by_component = collections.Counter()
    by_thread = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    kernel = 0
    total = 0
    for header, frames in samples(sys.stdin):
        comm = header[0]
        period = int(header[1]) if len(header) > 1 and header[1].isdigit() else 1
        total += period
        by_thread[comm] += period
        component = classify(comm, frames)
        by_component[component] += period
        if frames:
            leaves[component][frames[0][0] or frames[0][1]] += period
        if frames and frames[0][1] == "[kernel.kallsyms]":
            kernel += period
    if total == 0:
        sys.exit("no samples: was the engine traced?")

    per_event = opts.cpu_seconds * 1e6 / max(opts.events, 1)
    print(f"window: {opts.events} customer messages, {opts.cpu_seconds:.1f} s engine CPU, "
          f"{per_event:.0f} us per event")
    print(f"{'component':<14}{'share':>8}{'us/event':>10}")
    for component in ORDER:
        share = by_component[component] / total
        if share:
            print(f"{component:<14}{share:>8.1%}{share * per_event:>10.1f}")
    print(f"{'(in kernel)':<14}{kernel / total:>8.1%}{kernel / total * per_event:>10.1f}")
    for component in ORDER:
        if opts.top and leaves[component]:
            print(f"{component}: " + ", ".join(
                f"{sym[:60]} {n / total:.1%}" for sym, n in leaves[component].most_common(opts.top)))
    print(f"{'thread':<18}{'share':>8}")
    for comm, period in by_thread.most_common(8):
        print(f"{comm:<18}{period / total:>8.1%}")


if __name__ == "__main__":
    main()
