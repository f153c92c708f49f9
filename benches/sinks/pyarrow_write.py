"""The Parquet baseline of benches/run-bench-sinks.sh: pyarrow reads the same window
rows (the JSONL the file sink wrote) and writes them as one Parquet file."""
import sys

import pyarrow.json as pj
import pyarrow.parquet as pq

rows, out = sys.argv[1], sys.argv[2]
table = pj.read_json(rows)
pq.write_table(table, out, row_group_size=65536)
print(table.num_rows)
