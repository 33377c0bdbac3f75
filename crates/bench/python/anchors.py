"""The Python anchors of `cargo xtask bench` (crates/bench/src/anchors.rs).

What a quant team would write instead of Strata, with the libraries the seeds
chose (asyncpg, duckdb, pyarrow, pandas), written the fast way each library
documents. The Rust side starts this file once, under the bench virtual
environment's Python, and sends one JSON request per stdin line; each answer
is one JSON line. Timings are `time.perf_counter()` around the operation only:
the interpreter's start, the imports and, unless an operation says "end to
end", the input's read are never measured.

Requests (`op`):
- `load`: reads a Parquet file into memory once (`parquet`), for later ops.
- `duck_ingest`: a fresh DuckDB file (`path`) with a keyed bars table
  (PRIMARY KEY (symbol, ts), the key kept unique), then times
  `INSERT OR REPLACE INTO bars SELECT * FROM <arrow table>` of the loaded rows.
- `duck_ingest_e2e`: end to end: read the Parquet file, a fresh DuckDB file,
  the keyed table, the insert, close.
- `duck_close`: closes the connection to `path`.
- `duck_range`, `duck_latest`, `duck_window`: one query per repetition on the
  file `duck_ingest` wrote, as Arrow (`con.sql(...).to_arrow_table()`, what
  duckdb 2 recommends); answers each repetition's seconds.
- `duck_leases`: no-op lease (32) + complete cycles on a tasks table in a
  DuckDB file, `workers` threads each with its own cursor.
- `pg_ingest`: end to end, as a user's script runs: read the Parquet file with
  pyarrow, make records, connect, `copy_records_to_table` into `schema.table`.
- `pg_upsert`: `executemany` of `INSERT ... ON CONFLICT DO UPDATE` of the
  loaded rows (which the table holds already).
- `pg_read`, `pg_window`: `fetch` of one symbol's range into a pandas DataFrame.
- `pg_leases`: no-op lease (32, `FOR UPDATE SKIP LOCKED`) + complete cycles,
  `workers` connections.
"""

import asyncio
import json
import sys
import threading
import time

import asyncpg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
KEYED_BARS = """CREATE TABLE bars (
    symbol VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL,
    low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume DOUBLE NOT NULL, vwap DOUBLE, trade_count BIGINT,
    PRIMARY KEY (symbol, ts))"""
LEASE_BATCH = 32

loaded = {}
duck_connections = {}


def table_of(path):
    if path not in loaded:
        loaded[path] = pq.read_table(path)
    return loaded[path]


def duck(path):
    if path not in duck_connections:
        duck_connections[path] = duckdb.connect(path)
    return duck_connections[path]


def timed_repeats(repeat, run):
    seconds, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = run()
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "rows": rows}


def duck_ingest(request):
    arrow_rows = table_of(request["parquet"])  # noqa: F841 (read by DuckDB's replacement scan)
    con = duck(request["path"])
    con.execute(KEYED_BARS)
    started = time.perf_counter()
    con.execute("INSERT OR REPLACE INTO bars SELECT * FROM arrow_rows")
    seconds = time.perf_counter() - started
    rows = con.sql("SELECT count(*) FROM bars").fetchall()[0][0]
    return {"seconds": [seconds], "rows": rows}


def duck_ingest_e2e(request):
    """End to end, as a ten-line script runs: read the Parquet file, open a
    fresh DuckDB file, create the keyed table, insert, close."""
    started = time.perf_counter()
    arrow_rows = pq.read_table(request["parquet"])  # noqa: F841 (read by DuckDB's replacement scan)
    con = duckdb.connect(request["path"])
    con.execute(KEYED_BARS)
    con.execute("INSERT OR REPLACE INTO bars SELECT * FROM arrow_rows")
    con.close()
    return {"seconds": [time.perf_counter() - started], "rows": arrow_rows.num_rows}


def duck_close(request):
    con = duck_connections.pop(request["path"], None)
    if con is not None:
        con.close()
    return {"seconds": [], "rows": 0}


def duck_query(request, sql, params):
    con = duck(request["path"])
    return timed_repeats(request["repeat"], lambda: con.sql(sql, params=params).to_arrow_table().num_rows)


def duck_range(request):
    sql = ("SELECT * FROM bars WHERE symbol = ? AND ts >= make_timestamp(?)::TIMESTAMPTZ"
           " AND ts < make_timestamp(?)::TIMESTAMPTZ ORDER BY ts")
    return duck_query(request, sql, [request["symbol"], request["start_us"], request["end_us"]])


def duck_latest(request):
    sql = "SELECT * FROM bars WHERE symbol = ? ORDER BY ts DESC LIMIT ?"
    return duck_query(request, sql, [request["symbol"], request["limit"]])


duck_window = duck_range


TASKS_DDL = """CREATE TABLE IF NOT EXISTS tasks (
    run_id VARCHAR NOT NULL, individual INTEGER NOT NULL, payload VARCHAR NOT NULL, state VARCHAR NOT NULL,
    attempts INTEGER NOT NULL, token BIGINT NOT NULL, worker VARCHAR, lease_expires_at_us BIGINT,
    fitness DOUBLE, result VARCHAR, PRIMARY KEY (run_id, individual))"""


def duck_leases(request):
    """Leases take the lowest pending individuals and mark them leased in one
    transaction; completes update the leased rows (token checked) in one
    transaction: the same statements a careful Python coordinator runs."""
    con = duck(request["path"])
    con.execute(TASKS_DDL)
    con.execute("CREATE SEQUENCE IF NOT EXISTS tokens")
    run = request["run"]
    con.execute("INSERT INTO tasks SELECT ?, i, '{}', 'pending', 0, 0, NULL, NULL, NULL, NULL FROM range(?) t(i)",
                [run, request["tasks"]])
    done = [0] * request["workers"]

    def worker(number):
        cursor = con.cursor()
        name = f"py-{number}"
        while True:
            for attempt in range(100):
                try:
                    cursor.execute("BEGIN")
                    leased = cursor.execute(
                        """UPDATE tasks SET state = 'leased', worker = ?, token = nextval('tokens'),
                               attempts = attempts + 1, lease_expires_at_us = epoch_us(now()) + 30000000
                           WHERE run_id = ? AND individual IN (
                               SELECT individual FROM tasks WHERE run_id = ? AND state = 'pending'
                               ORDER BY individual LIMIT ?)
                           RETURNING individual, token""",
                        [name, run, run, LEASE_BATCH]).fetchall()
                    cursor.execute("COMMIT")
                    break
                except duckdb.TransactionException:
                    cursor.execute("ROLLBACK")
            else:
                raise RuntimeError("lease kept conflicting")
            if not leased:
                return
            cursor.execute("BEGIN")
            cursor.executemany(
                """UPDATE tasks SET state = 'done', fitness = 0.0, result = '{}', worker = NULL,
                       lease_expires_at_us = NULL
                   WHERE run_id = ? AND individual = ? AND token = ? AND state = 'leased'""",
                [(run, individual, token) for individual, token in leased])
            cursor.execute("COMMIT")
            done[number] += len(leased)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(request["workers"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"seconds": [seconds], "rows": sum(done)}


def records_of(table):
    return list(zip(*(column.to_pylist() for column in table.columns)))


async def pg_ingest(request):
    started = time.perf_counter()
    table = pq.read_table(request["parquet"])
    records = records_of(table)
    con = await asyncpg.connect(request["dsn"])
    try:
        await con.copy_records_to_table(request["table"], schema_name=request["schema"], records=records,
                                        columns=COLUMNS)
    finally:
        await con.close()
    return {"seconds": [time.perf_counter() - started], "rows": len(records)}


async def pg_upsert(request):
    records = records_of(table_of(request["parquet"]))
    con = await asyncpg.connect(request["dsn"])
    try:
        sql = f"""INSERT INTO {request["schema"]}.{request["table"]} ({", ".join(COLUMNS)})
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                  ON CONFLICT (symbol, ts) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,
                      low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume,
                      vwap = EXCLUDED.vwap, trade_count = EXCLUDED.trade_count"""
        started = time.perf_counter()
        async with con.transaction():
            await con.executemany(sql, records)
        seconds = time.perf_counter() - started
    finally:
        await con.close()
    return {"seconds": [seconds], "rows": len(records)}


async def pg_read(request):
    con = await asyncpg.connect(request["dsn"])
    try:
        sql = f"""SELECT {", ".join(COLUMNS)} FROM {request["schema"]}.{request["table"]}
                  WHERE symbol = $1 AND ts >= to_timestamp($2 / 1e6) AND ts < to_timestamp($3 / 1e6) ORDER BY ts"""
        seconds, rows = [], 0
        for _ in range(request["repeat"]):
            started = time.perf_counter()
            records = await con.fetch(sql, request["symbol"], request["start_us"], request["end_us"])
            frame = pd.DataFrame.from_records(records, columns=COLUMNS)
            seconds.append(time.perf_counter() - started)
            rows = len(frame)
    finally:
        await con.close()
    return {"seconds": seconds, "rows": rows}


pg_window = pg_read


async def pg_leases(request):
    schema, run = request["schema"], request["run"]
    setup = await asyncpg.connect(request["dsn"])
    try:
        await setup.execute(f"""CREATE TABLE IF NOT EXISTS {schema}.py_tasks (
            run_id TEXT NOT NULL, individual INTEGER NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL, token BIGINT NOT NULL, worker TEXT, lease_expires_at TIMESTAMPTZ,
            fitness DOUBLE PRECISION, result TEXT, PRIMARY KEY (run_id, individual))""")
        await setup.execute(f"CREATE SEQUENCE IF NOT EXISTS {schema}.py_tokens")
        await setup.execute(f"""INSERT INTO {schema}.py_tasks
            SELECT $1, i, '{{}}', 'pending', 0, 0 FROM generate_series(0, $2 - 1) AS i""", run, request["tasks"])
        await setup.execute(f"ANALYZE {schema}.py_tasks")
    finally:
        await setup.close()
    connections = [await asyncpg.connect(request["dsn"]) for _ in range(request["workers"])]

    async def worker(con, name):
        done = 0
        while True:
            async with con.transaction():
                leased = await con.fetch(f"""
                    UPDATE {schema}.py_tasks AS t SET state = 'leased', worker = $1,
                        token = nextval('{schema}.py_tokens'), attempts = t.attempts + 1,
                        lease_expires_at = now() + interval '30 seconds'
                    FROM (SELECT run_id, individual FROM {schema}.py_tasks
                          WHERE run_id = $2 AND state = 'pending' ORDER BY individual LIMIT $3
                          FOR UPDATE SKIP LOCKED) AS picked
                    WHERE t.run_id = picked.run_id AND t.individual = picked.individual
                    RETURNING t.individual, t.token""", name, run, LEASE_BATCH)
            if not leased:
                return done
            async with con.transaction():
                await con.executemany(f"""
                    UPDATE {schema}.py_tasks SET state = 'done', fitness = 0.0, result = '{{}}', worker = NULL,
                        lease_expires_at = NULL
                    WHERE run_id = $1 AND individual = $2 AND token = $3 AND state = 'leased'""",
                    [(run, row["individual"], row["token"]) for row in leased])
            done += len(leased)

    try:
        started = time.perf_counter()
        done = await asyncio.gather(*(worker(con, f"py-{n}") for n, con in enumerate(connections)))
        seconds = time.perf_counter() - started
    finally:
        for con in connections:
            await con.close()
    return {"seconds": [seconds], "rows": sum(done)}


def load(request):
    table = table_of(request["parquet"])
    return {"seconds": [], "rows": table.num_rows}


def main():
    versions = {"python": sys.version.split()[0], "asyncpg": asyncpg.__version__, "duckdb": duckdb.__version__,
                "pyarrow": pa.__version__, "pandas": pd.__version__}
    print(json.dumps({"ready": True, "versions": versions}), flush=True)
    loop = asyncio.new_event_loop()
    for line in sys.stdin:
        request = json.loads(line)
        handler = globals().get(request["op"])
        try:
            if handler is None:
                raise ValueError(f"unknown op {request['op']!r}")
            answer = handler(request)
            if asyncio.iscoroutine(answer):
                answer = loop.run_until_complete(answer)
        except Exception as error:  # the Rust side reports it and stops the section
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
