"""What the runtimes print: access lines, warnings, harmless errors, and the failures
a caller logs when a call to a dependency fails, each in its runtime's style."""

from __future__ import annotations

import json
import math


def access_line(rng, pod, ts):
    wl = pod.wl
    path = rng.choice(["/api/v1/products", "/api/v1/cart", "/healthz", "/api/v1/orders", "/api/v1/users/me",
                       "/api/v1/search", "/metrics", "/api/v1/checkout"])
    ms = max(1, int(rng.lognormvariate(math.log(max(wl.base_lat, 0.005) * 600), 0.5)))
    code = 200 if rng.random() > 0.02 else rng.choice([201, 204, 301, 400, 404])
    ip = f"10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
    if wl.lang == "go":
        return f'level=info ts={iso(ts)} caller=http.go:{rng.randint(80, 140)} msg="request completed" method=GET path={path} status={code} duration={ms}ms'
    if wl.lang == "java":
        return f"INFO [http-nio-8080-exec-{rng.randint(1, 40)}] o.s.web.servlet.DispatcherServlet : Completed {code} OK for GET \"{path}\" in {ms} ms"
    if wl.lang == "python":
        return f'{ip} - - "GET {path} HTTP/1.1" {code} {rng.randint(80, 9000)} "-" "python-requests/2.31.0" {ms / 1000:.3f}'
    if wl.lang == "node":
        return json.dumps({"level": 30, "time": ts, "pid": 1, "hostname": pod.name, "req": {"method": "GET", "url": path},
                           "res": {"statusCode": code}, "responseTime": ms, "msg": "request completed"})
    if wl.lang == "nginx":
        return f'{ip} - - [{clf(ts)}] "GET {path} HTTP/1.1" {code} {rng.randint(200, 20000)} "-" "Mozilla/5.0" {rng.randint(300, 900)} {ms / 1000:.3f} [shop-api-gateway-8080] [] 10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}:8080 {rng.randint(200, 20000)} {ms / 1000:.3f} {code} {rng.randbytes(16).hex()}'
    if wl.lang == "postgres":
        return rng.choice([
            f"LOG:  checkpoint starting: time",
            f"LOG:  checkpoint complete: wrote {rng.randint(50, 3000)} buffers ({rng.uniform(0.1, 9):.1f}%); 0 WAL file(s) added, 0 removed, {rng.randint(0, 3)} recycled; write={rng.uniform(1, 30):.3f} s, sync=0.{rng.randint(1, 99):03d} s, total={rng.uniform(1, 30):.3f} s",
            f"LOG:  automatic analyze of table \"app.public.{rng.choice(['orders', 'items', 'users', 'sessions'])}\" system usage: CPU: user: 0.{rng.randint(1, 9)}0 s, system: 0.00 s, elapsed: 0.{rng.randint(1, 99):02d} s",
            "LOG:  connection received: host=10.3.12.7 port=51822",
        ])
    if wl.lang == "redis":
        return rng.choice([
            f"1:M {redis_ts(ts)} * {rng.randint(100, 10000)} changes in 300 seconds. Saving...",
            f"1:M {redis_ts(ts)} * Background saving started by pid {rng.randint(100, 9999)}",
            f"{rng.randint(100, 9999)}:C {redis_ts(ts)} * DB saved on disk",
            f"1:M {redis_ts(ts)} * Background saving terminated with success",
        ])
    if wl.lang == "kafka":
        return rng.choice([
            f"[{iso(ts)}] INFO [LocalLog partition=orders-{rng.randint(0, 11)}, dir=/bitnami/kafka/data] Rolled new log segment at offset {rng.randint(10**6, 10**8)} in 3 ms. (kafka.log.LocalLog)",
            f"[{iso(ts)}] INFO [GroupCoordinator {rng.randint(0, 2)}]: Member consumer-order-worker-1-{rng.randbytes(4).hex()} in group order-worker has left, removing it from the group (kafka.coordinator.group.GroupCoordinator)",
            f"[{iso(ts)}] INFO [ProducerStateManager partition=orders-{rng.randint(0, 11)}] Wrote producer snapshot at offset {rng.randint(10**6, 10**8)} with 4 producer ids in 1 ms. (kafka.log.ProducerStateManager)",
        ])
    if wl.lang == "es":
        return rng.choice([
            f'{{"@timestamp":"{iso(ts)}", "log.level": "INFO", "message":"[gc][{rng.randint(1000, 99999)}] overhead, spent [{rng.randint(100, 400)}ms] collecting in the last [1s]", "component":"o.e.m.j.JvmGcMonitorService"}}',
            f'{{"@timestamp":"{iso(ts)}", "log.level": "INFO", "message":"[products-v{rng.randint(3, 9)}] update_mapping [_doc]", "component":"o.e.c.m.MetadataMappingService"}}',
        ])
    if wl.lang == "coredns":
        return f"[INFO] 10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}:{rng.randint(30000, 60000)} - {rng.randint(1, 65535)} \"A IN {rng.choice(['kafka', 'pg-main', 'redis-shared', 'api-gateway'])}.svc.cluster.local. udp 60 false 512\" NOERROR qr,aa,rd 106 0.000{rng.randint(100, 999)}s"
    if wl.lang == "memcached":
        return f"<{rng.randint(20, 90)} new auto-negotiating client connection"
    return f"{rng.choice(['flushed chunks', 'scrape ok', 'synced rules'])} in {rng.randint(1, 90)}ms"


def iso(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def clf(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def redis_ts(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%d %b %Y %H:%M:%S.") + f"{ts % 1000:03d}"


WARN_NOISE = {
    "go": ['level=warn msg="retrying request" attempt=2 err="EOF"', 'level=warn msg="slow handler" path=/api/v1/cart duration=1.2s'],
    "java": ["WARN [HikariPool-1 housekeeper] com.zaxxer.hikari.pool.HikariPool : HikariPool-1 - Thread starvation or clock leap detected (housekeeper delta=1m2s).",
             "WARN [main] o.h.e.j.e.i.JdbcEnvironmentInitiator : HHH000342: Could not obtain connection to query metadata"],
    "python": ["WARNING:urllib3.connectionpool:Retrying (Retry(total=2, connect=None, read=None, redirect=None, status=None)) after connection broken by 'RemoteDisconnected('Remote end closed connection without response')': /v1/items",
               "WARNING:root:cache miss ratio above 0.4"],
    "node": ['{"level":40,"msg":"deprecated API used: req.param()"}', '{"level":40,"msg":"event loop lag 212ms"}'],
    "nginx": ['[warn] 29#29: *88123 an upstream response is buffered to a temporary file /tmp/proxy_temp/1/00/0000000001 while reading upstream'],
}


# Error lines real services print all day that are not incidents.
ERROR_NOISE = {
    "go": ['level=error msg="failed to flush metrics" err="write udp 10.3.4.5:41822->10.96.12.4:8125: write: connection refused"',
           'level=error msg="invalid request body" err="json: cannot unmarshal string into Go struct field CartItem.quantity of type int" client=10.2.9.14',
           'level=error msg="client closed request" path=/api/v1/products status=499'],
    "java": ["ERROR [http-nio-8080-exec-12] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() for servlet [dispatcherServlet] threw exception: org.springframework.web.HttpMediaTypeNotSupportedException: Content type 'text/plain;charset=UTF-8' not supported",
             "ERROR [scheduling-1] c.s.jobs.CacheRefresher : Cache refresh skipped: lock held by another instance"],
    "python": ["ERROR:app.handlers:Invalid coupon code 'SUMMER-23' for user 88123",
               "ERROR:sentry_sdk.errors:Internal error in sentry_sdk"],
    "node": ['{"level":50,"msg":"Unhandled promise rejection: AbortError: The user aborted a request."}'],
    "nginx": ['[error] 31#31: *991021 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.4.1.9, server: _, request: "GET /favicon.ico HTTP/1.1"'],
}


def host(wl):
    return f"{wl.name}.{wl.ns}.svc.cluster.local"


def failure_message(rng, caller, callee, mode, pod=None):
    """What `caller` logs when a call to `callee` fails in `mode`, in its runtime's style."""
    h = host(callee)
    port = callee.port if callee.role in ("http", "ingress") else {"db": 5432, "cache": 6379, "queue": 9092,
                                                                    "search": 9200, "dns": 53}.get(callee.role, 8080)
    ip = f"{pod.ip if pod else '10.3.7.21'}:{port}"
    lang = caller.lang
    if mode == "timeout":
        if callee.role == "db":
            return {"go": f'level=error msg="query failed" db={callee.name} err="pq: canceling statement due to statement timeout"',
                    "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] o.h.engine.jdbc.spi.SqlExceptionHelper : HikariPool-1 - Connection is not available, request timed out after 30000ms.",
                    "python": f"ERROR:sqlalchemy.pool.impl.QueuePool:QueuePool limit of size 10 overflow 5 reached, connection timed out, timeout 30.00 (host={h})",
                    }.get(lang, f"error: query to {h} timed out")
        if callee.role == "cache":
            return {"go": f'level=error msg="cache get failed" err="redis: i/o timeout" addr={h}:6379',
                    "java": f"ERROR [lettuce-nioEventLoop-4-2] c.s.cache.RedisCache : Command timed out after 2 second(s) ({h})",
                    "python": f"ERROR:app.cache:redis.exceptions.TimeoutError: Timeout reading from {h}:6379"}.get(lang, f"error: cache {h} timed out")
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="Get \\"http://{h}:{port}/v1\\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on GET request for \"http://{h}:{port}/v1\": Read timed out; nested exception is java.net.SocketTimeoutException: Read timed out",
                "python": f"ERROR:app.clients:requests.exceptions.ReadTimeout: HTTPConnectionPool(host='{h}', port={port}): Read timed out. (read timeout=5)",
                "node": json.dumps({"level": 50, "msg": f"request to http://{h}:{port}/v1 failed, reason: socket hang up", "code": "ECONNRESET"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream timed out (110: Operation timed out) while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}", host: "shop.example.com"',
                }.get(lang, f"timeout calling {h}")
    if mode == "refused":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="dial tcp {ip}: connect: connection refused"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on POST request for \"http://{h}:{port}/v1\": Connection refused; nested exception is java.net.ConnectException: Connection refused",
                "python": f"ERROR:app.clients:requests.exceptions.ConnectionError: HTTPConnectionPool(host='{h}', port={port}): Max retries exceeded with url: /v1 (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f2c1c2b4d30>: Failed to establish a new connection: [Errno 111] Connection refused'))",
                "node": json.dumps({"level": 50, "msg": f"connect ECONNREFUSED {ip}", "code": "ECONNREFUSED"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} connect() failed (111: Connection refused) while connecting to upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}"',
                }.get(lang, f"connection refused by {h}")
    if mode == "reset":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="read tcp 10.3.1.4:48212->{ip}: read: connection reset by peer"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on GET request for \"http://{h}:{port}/v1\": Unexpected end of file from server",
                "python": f"ERROR:app.clients:requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
                "node": json.dumps({"level": 50, "msg": f"request to http://{h}:{port}/v1 failed, reason: socket hang up", "code": "ECONNRESET"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream prematurely closed connection while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, upstream: "http://{ip}/"',
                }.get(lang, f"connection reset by {h}")
    if mode == "5xx":
        code = rng.choice([500, 502, 503, 503])
        return {"go": f'level=error msg="upstream returned error" upstream={callee.name} status={code}',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : {code} {'Internal Server Error' if code == 500 else 'Service Unavailable'} from GET http://{h}:{port}/v1",
                "python": f"ERROR:app.clients:HTTPError: {code} Server Error for url: http://{h}:{port}/v1",
                "node": json.dumps({"level": 50, "msg": f"upstream {callee.name} responded {code}"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream prematurely closed connection while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}"' if code != 503 else f'[error] 31#31: *{rng.randint(10**5, 10**7)} no live upstreams while connecting to upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{callee.ns}-{callee.name}-{port}/api/v1/{callee.name}"',
                }.get(lang, f"{callee.name} returned {code}")
    if mode == "dns":
        resolver = "10.96.0.10:53" if rng.random() < 0.8 else "172.20.0.10:53"
        return {"go": f'level=error msg="upstream call failed" err="dial tcp: lookup {h} on {resolver}: read udp 10.3.{rng.randint(0, 255)}.{rng.randint(2, 254)}:{rng.randint(30000, 60000)}->{resolver}: i/o timeout"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error: {h}: Temporary failure in name resolution; nested exception is java.net.UnknownHostException: {h}",
                "python": f"ERROR:app.clients:socket.gaierror: [Errno -3] Temporary failure in name resolution ({h})",
                "node": json.dumps({"level": 50, "msg": f"getaddrinfo EAI_AGAIN {h}", "code": "EAI_AGAIN"}),
                "nginx": f'[error] 31#31: {h} could not be resolved (110: Operation timed out)',
                }.get(lang, f"lookup {h} failed")
    if mode == "tls":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="Post \\"https://{h}:8443/v1/charge\\": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-01-01T11:02:13Z is after 2026-01-01T11:00:00Z"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on POST request for \"https://{h}:8443/v1\": PKIX path validation failed: java.security.cert.CertPathValidatorException: validity check failed; nested exception is javax.net.ssl.SSLHandshakeException",
                "python": f"ERROR:app.clients:requests.exceptions.SSLError: HTTPSConnectionPool(host='{h}', port=8443): Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)')))",
                "node": json.dumps({"level": 50, "msg": f"request to https://{h}:8443/v1 failed, reason: certificate has expired", "code": "CERT_HAS_EXPIRED"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream, upstream: "https://{ip}/"',
                }.get(lang, f"certificate of {h} expired")
    if mode == "auth":
        user = callee.name.split("-")[0]
        return {"go": f'level=error msg="db ping failed" err="pq: password authentication failed for user \\"{user}\\""',
                "java": f"ERROR [HikariPool-1 connection adder] com.zaxxer.hikari.pool.HikariPool : HikariPool-1 - Exception during pool initialization. org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"{user}\"",
                "python": f"ERROR:sqlalchemy.pool.impl.QueuePool:Exception during reset or similar: psycopg2.OperationalError: connection to server at \"{h}\" (10.3.4.2), port 5432 failed: FATAL:  password authentication failed for user \"{user}\"",
                }.get(lang, f"auth failed for {user}")
    if mode == "kafka":
        return {"go": f'level=error msg="failed to produce" topic=orders err="kafka server: Request exceeded the user-specified time limit in the request (Timeout)" broker={h}:9092',
                "java": f"ERROR [kafka-producer-network-thread | producer-1] o.a.k.c.p.internals.Sender : [Producer clientId=producer-1] Expiring 14 record(s) for orders-{rng.randint(0, 11)}:120003 ms has passed since batch creation",
                "python": "ERROR:kafka.producer.kafka:KafkaTimeoutError: Batch for TopicPartition(topic='orders', partition=4) containing 9 record(s) expired: 30 seconds have passed since batch creation"}.get(lang, "produce to kafka failed")
    if mode == "es":
        return {"java": f"ERROR [indexer-3] c.s.search.ProductIndexer : Bulk indexing failed: ElasticsearchStatusException[Elasticsearch exception [type=cluster_block_exception, reason=index [products-v{rng.randint(3, 9)}] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];]]",
                "python": "ERROR:indexer:elasticsearch.exceptions.AuthorizationException: AuthorizationException(403, 'cluster_block_exception', 'index [products] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];')",
                "go": 'level=error msg="bulk request failed" err="elastic: Error 429 (Too Many Requests): index [products] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]; [type=cluster_block_exception]"'}.get(lang, "indexing blocked")
    raise ValueError(mode)


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))
