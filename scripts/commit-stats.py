#!/usr/bin/env python3
"""The embedded bus's and store's group commits between two scrapes of
/metrics: groups, operations per group, and p50 / p99 of one group's write
and sync (interpolated within buckets, as Prometheus' histogram_quantile).

    scripts/commit-stats.py BEFORE.txt AFTER.txt
"""
import re
import sys

LINE = re.compile(r'^switchboard_group_commit_(seconds_bucket|seconds_count|ops_total)\{(.*)\} (\S+)$')


def read(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = (labels.get("writer", "?"), m.group(1), labels.get("le"))
            out[key] = float(m.group(3))
    return out


def quantile(q, buckets):
    """buckets: [(upper bound, cumulative count)], sorted."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0)
        lower, below = upper, count
    return lower


def main():
    before, after = read(sys.argv[1]), read(sys.argv[2])
    parts = []
    for writer in sorted({k[0] for k in after}):
        d = lambda kind, le=None: after.get((writer, kind, le), 0) - before.get((writer, kind, le), 0)
        groups = d("seconds_count")
        ops = d("ops_total")
        bounds = sorted(
            (float(k[2]), k[2]) for k in after if k[0] == writer and k[1] == "seconds_bucket"
        )
        buckets = [(b, d("seconds_bucket", le)) for b, le in bounds]
        p50, p99 = (quantile(q, buckets) * 1000 for q in (0.5, 0.99))
        per = ops / groups if groups else 0
        parts.append(f"{writer} {groups:.0f} groups, {per:.2f} ops each, p50 {p50:.2f} / p99 {p99:.2f} ms")
    print("commits  " + "; ".join(parts) if parts else "commits  none")


if __name__ == "__main__":
    main()
