"""Scans every row one MetaChat namespace (and the namespaces derived from it) holds in Cassandra for a byte string.

Usage: cassandra_rows.py NODES KEYSPACE NAMESPACE NEEDLE_HEX
Prints `rows N` (how many rows of the namespace were read), then one line
`hit TABLE.COLUMN` per column value that contains the needle. Run with the
Python of `scripts/cassandra install` (it has cassandra-driver).
"""
import sys

from cassandra.cluster import Cluster

TABLES = ["documents", "checkpoints", "log_heads", "stream_events", "global_log", "event_ids"]


def main():
    nodes, keyspace, namespace, needle_hex = sys.argv[1:5]
    host, port = nodes.split(",")[0].strip().rsplit(":", 1)
    needle = bytes.fromhex(needle_hex)
    cluster = Cluster([host], port=int(port))
    session = cluster.connect(keyspace)
    rows = 0
    for table in TABLES:
        for row in session.execute(f"SELECT * FROM {table}"):
            values = row._asdict()
            ns = values.get("ns") or ""
            # The namespace, and the services' own read-model namespaces
            # derived from it (`{namespace}_{roles}`) in a distributed run.
            if ns != namespace and not ns.startswith(namespace + "_"):
                continue
            rows += 1
            for column, value in values.items():
                raw = bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
                if needle in raw:
                    print(f"hit {table}.{column}")
    print(f"rows {rows}")
    cluster.shutdown()


if __name__ == "__main__":
    main()
