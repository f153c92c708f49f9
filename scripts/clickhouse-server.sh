#!/usr/bin/env bash
# Runs ClickHouse in the foreground on 127.0.0.1:HTTP_PORT (native protocol on
# TCP_PORT) with a fresh data directory DATA_DIR and the config of scripts/clickhouse.
# Usage: clickhouse-server.sh HTTP_PORT TCP_PORT DATA_DIR [keep]
# With `keep`, DATA_DIR's tables are kept (a restart after a crash).
set -euo pipefail
http_port="$1" tcp_port="$2" data="$3" keep="${4:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
server="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
[[ "$keep" == keep ]] || rm -rf "$data"
mkdir -p "$data/config" "$data/tmp" "$data/user_files" "$data/format_schemas"
sed -e "s#HTTP_PORT#$http_port#; s#TCP_PORT#$tcp_port#; s#DATA_DIR#$data#g; s#CONFIG_DIR#$data/config#" \
  "$here/clickhouse/config.xml" >"$data/config/config.xml"
cp "$here/clickhouse/users.xml" "$data/config/users.xml"
exec "$server" --config-file="$data/config/config.xml"
