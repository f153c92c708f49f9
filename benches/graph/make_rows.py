"""Log events about pods for the graph sink benchmark, and the same rows as one
big UNWIND (the server's own bulk path): `make_rows.py N EVENTS.jsonl QUERY.cypher`."""
import json
import sys

count, events_path, query_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = []
with open(events_path, "w") as events:
    for i in range(count):
        pod = f"api-{i % 100:03d}"
        event = {
            "ts": 1_732_000_000_000 + i * 10,
            "tenant": "acme",
            "source": "bench",
            "kind": "log",
            "resource": {"kind": "Pod", "namespace": "prod", "name": pod},
            "level": "warning",
            "message": f"slow request {i}",
        }
        events.write(json.dumps(event) + "\n")
        rows.append((f"e{i}", event["ts"], pod, event["message"]))


def literal(row):
    ident, ts, pod, message = row
    return (
        f"{{id:'{ident}',ts:{ts},kind:'Pod',namespace:'prod',name:'{pod}',"
        f"event_kind:'log',source:'bench',level:'warning',message:'{message}'}}"
    )


with open(query_path, "w") as query:
    query.write(
        "CYPHER tenant='acme' rows=[" + ",".join(map(literal, rows)) + "] "
        "UNWIND $rows AS r "
        "MERGE (a:Resource {tenant: $tenant, kind: r.kind, namespace: r.namespace, name: r.name}) "
        "MERGE (e:Episodic {tenant: $tenant, id: r.id}) "
        "SET e.ts = r.ts, e.event_kind = r.event_kind, e.source = r.source, e.level = r.level, e.message = r.message "
        "MERGE (e)-[:ABOUT {tenant: $tenant}]->(a)"
    )
