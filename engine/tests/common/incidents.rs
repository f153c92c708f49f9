//! A small Kubernetes cluster's events that the `incidents` operator turns
//! into incidents with ranked causes, for the sinks' incident tests.

/// A resource reference as event JSON.
pub fn resource(kind: &str, namespace: &str, name: &str) -> String {
    format!(r#"{{"kind":"{kind}","namespace":"{namespace}","name":"{name}"}}"#)
}

/// A small cluster of `tenant`: a service calling a database whose node
/// goes bad, the database killed, then the callers failing; later an
/// unrelated crash elsewhere. Returned in time order.
pub fn events(tenant: &str, t0: u64) -> Vec<String> {
    let web = resource("Pod", "prod", "web-1");
    let db = resource("Pod", "prod", "db-0");
    let edge = |ts: u64, from: &str, relation: &str, to: &str| {
        format!(
            r#"{{"ts":{ts},"tenant":"{tenant}","source":"state-watcher","kind":"topology","from":{from},"to":{to},"relation":"{relation}","op":"upsert"}}"#
        )
    };
    let k8s = |ts: u64, about: &str, reason: &str, severity: &str| {
        format!(
            r#"{{"ts":{ts},"tenant":"{tenant}","source":"state-watcher","kind":"k8s_event","resource":{about},"reason":"{reason}","severity":"{severity}","message":"{reason} it's \"quoted\""}}"#
        )
    };
    let log = |ts: u64, about: &str, message: &str| {
        format!(
            r#"{{"ts":{ts},"tenant":"{tenant}","source":"vector","kind":"log","resource":{about},"level":"error","message":"{message}"}}"#
        )
    };
    vec![
        edge(t0, &resource("Service", "prod", "web"), "SELECTS", &web),
        edge(t0, &resource("Deployment", "prod", "web"), "OWNS", &web),
        edge(t0 + 1, &web, "CALLS", &db),
        edge(t0 + 2, &web, "RUNS_ON", &resource("Node", "", "node-1")),
        edge(t0 + 3, &db, "RUNS_ON", &resource("Node", "", "node-2")),
        edge(
            t0 + 4,
            &db,
            "MOUNTS",
            &resource("PersistentVolumeClaim", "prod", "data"),
        ),
        k8s(
            t0 + 60_000,
            &resource("Node", "", "node-2"),
            "NodeHasDiskPressure",
            "warning",
        ),
        k8s(t0 + 280_000, &db, "OOMKilled", "warning"),
        log(t0 + 300_000, &db, "out of memory"),
        log(t0 + 302_000, &web, "connection refused by db-0"),
        k8s(t0 + 305_000, &web, "BackOff", "error"),
        log(t0 + 310_000, &web, "upstream timed out"),
        // Much later, an unrelated crash of another pod.
        edge(
            t0 + 900_000,
            &resource("Deployment", "prod", "batch"),
            "OWNS",
            &resource("Pod", "prod", "batch-1"),
        ),
        k8s(
            t0 + 1_000_000,
            &resource("Pod", "prod", "batch-1"),
            "CrashLoopBackOff",
            "error",
        ),
    ]
}

/// [`events`] of two tenants (the second 500 ms later), in time order, as a JSONL text.
pub fn two_tenants(first: &str, second: &str, t0: u64) -> String {
    let mut lines = events(first, t0);
    lines.extend(events(second, t0 + 500));
    lines.sort_by_key(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"].as_u64());
    lines.join("\n") + "\n"
}
