#!/usr/bin/env python3
"""Synthetic node reports carrying the accelerator summary, as the collector's JetStream sink
writes them (docs/collector.md, docs/jetstream.md), for the capacity view at grid scale. Shared
by bench/capacity_scale.sh and bench/grid_sim.sh; when the stream's record format changes, this
is the one place to follow it.

    capacity_records.py gen NODES COUNT SEQ
        one line per report (SUBJECT<TAB>MSG-ID<TAB>PAYLOAD, for nats_pub.py): every node once
        when COUNT >= NODES, else COUNT random nodes; all with sequence number SEQ.
    capacity_records.py fresh NATS_URL VIEW_PORT NODES SECONDS RATE TRACKED
        for SECONDS: publishes RATE reports per second with the current time as sampling time
        (TRACKED nodes spread over the NODES each get one a second, random others the rest), and
        polls GET /v1/nodes/<id> of the tracked nodes in turn; when an answer shows a new report,
        freshness = the answer's arrival - the report's sampling time. Prints one JSON line:
        count, p50_ms, p99_ms, max_ms, published, poll_round_ms (the poller's own period, an
        upper bound of what it adds)."""
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import nats_pub  # noqa: E402

MODELS = ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA L40S"]


def node_name(i):
    return "n%06d" % i


def record(i, seq, t_ns, busy, total=8):
    node, region, site = node_name(i), "r%d" % (i % 8), "s%d" % (i % 64)
    metrics = [
        {"name": "gridnode_accelerators", "labels": {"modelName": MODELS[i % 3]}, "value": total},
        {"name": "gridnode_accelerators_busy", "labels": {}, "value": busy},
        {"name": "gridnode_accelerators_unhealthy", "labels": {}, "value": 0},
        {"name": "gridnode_accelerator_memory_free_bytes", "labels": {}, "value": (total - busy) * 80 << 30},
        {"name": "gridnode_accelerator_power_headroom_watts", "labels": {}, "value": (total - busy) * 400},
    ]
    rec = {"type": "report", "node": node, "seq": seq, "time_ns": t_ns,
           "labels": {"region": region, "site": site}, "metrics": metrics}
    return ("gridnode.reports.%s.%s.%s" % (region, site, node), "%s:%d:%d" % (node, seq, t_ns),
            json.dumps(rec, separators=(",", ":")))


def gen(nodes, count, seq):
    pick = range(nodes) if count >= nodes else (random.randrange(nodes) for _ in range(count))
    out = sys.stdout
    for i in pick:
        out.write("%s\t%s\t%s\n" % record(i, seq, time.time_ns(), random.randrange(9)))


def fresh(url, port, nodes, seconds, rate, tracked):
    if not 1 <= tracked <= nodes or rate < 1:
        sys.exit("fresh: TRACKED must be 1..NODES and RATE at least 1")
    tracked_ids = [i * (nodes // tracked) for i in range(tracked)]
    seqs = {}
    published = [0]
    stop = time.time() + seconds

    def publish():
        s, f = nats_pub.connect(url)
        tick, t0, k = 0.01, time.time(), 0
        while time.time() < stop:
            # Every tracked node once a second, spread over the second; random nodes the rest.
            due = int((time.time() - t0) * rate)
            batch = []
            while k < due:
                every = max(1, rate // tracked)
                i = tracked_ids[(k // every) % tracked] if k % every == 0 else random.randrange(nodes)
                seqs[i] = seqs.get(i, 1) + 1
                batch.append(nats_pub.frame(*record(i, seqs[i], time.time_ns(), random.randrange(9))))
                k += 1
            if batch:
                s.sendall(b"".join(batch))
                published[0] += len(batch)
            time.sleep(tick)
        nats_pub.flush(s, f)

    pub = threading.Thread(target=publish)
    pub.start()
    seen, ms, rounds, t_start = {}, [], 0, time.time()
    while pub.is_alive():
        rounds += 1
        for i in tracked_ids:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/v1/nodes/" + node_name(i))
                r = conn.getresponse()
                body = r.read()
                now = time.time_ns()
                conn.close()
            except OSError:
                continue
            if r.status != 200:
                continue
            j = json.loads(body)
            if seen.get(i) not in (None, j["seq"]):
                ms.append((now - j["time_ns"]) / 1e6)
            seen[i] = j["seq"]
    pub.join()
    ms.sort()
    pick = lambda q: ms[min(len(ms) - 1, int(q * (len(ms) - 1)))] if ms else 0  # noqa: E731
    print(json.dumps({"count": len(ms), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "max_ms": ms[-1] if ms else 0, "published": published[0],
                      "poll_round_ms": (time.time() - t_start) * 1000 / max(1, rounds)}))


def main():
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "fresh":
        fresh(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
              int(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit("usage: capacity_records.py gen|fresh …")


if __name__ == "__main__":
    main()
