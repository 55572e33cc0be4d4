#!/usr/bin/env python3
"""A client of the tiered-storage HTTP service using only Python's standard library.

Puts records (one by one and as an NDJSON batch), updates one, reads by id and by signature,
scans every page with the `next` cursor, and reads /metrics, checking every answer. Exits
non-zero on the first mismatch.

    python3 python_client.py http://127.0.0.1:8080 [--token TOKEN]
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class ServiceError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code


class Client:
    def __init__(self, base_url, token=None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method, path, body=None, content_type="application/json"):
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                kind = resp.headers.get("Content-Type", "")
                return resp.status, (json.loads(raw) if kind.startswith("application/json") else raw.decode())
        except urllib.error.HTTPError as e:
            error = json.loads(e.read())["error"]
            raise ServiceError(e.code, error["code"], error["message"]) from None

    def put(self, record):
        status, body = self.request("POST", "/v1/records", record)
        check(status == 201, f"put answered {status}")
        return body["id"]

    def put_batch(self, records):
        ndjson = "".join(json.dumps(r) + "\n" for r in records).encode()
        _, body = self.request("POST", "/v1/records:batch", ndjson, "application/x-ndjson")
        return body

    def update(self, record):
        _, body = self.request("PUT", f"/v1/records/{record['id']}", record)
        return body["id"]

    def get(self, record_id):
        return self.request("GET", f"/v1/records/{record_id}")[1]

    def get_by_signature(self, signature):
        quoted = urllib.parse.quote(signature, safe="")
        return self.request("GET", f"/v1/records/by-signature/{quoted}")[1]

    def scan(self, page_size, **filters):
        """Every matching record, following the `next` cursor page by page."""
        after = None
        while True:
            params = dict(filters, limit=page_size)
            if after is not None:
                params["after"] = after
            _, page = self.request("GET", "/v1/records?" + urllib.parse.urlencode(params))
            yield from page["records"]
            after = page["next"]
            if after is None:
                return

    def sql(self, statement):
        """One read-only SQL statement over the table `records`: (columns, rows)."""
        _, answer = self.request("POST", "/v1/sql", {"sql": statement})
        return answer["columns"], answer["rows"]

    def metrics(self):
        return self.request("GET", "/metrics")[1]


def check(condition, message):
    if not condition:
        print("MISMATCH: " + message, file=sys.stderr)
        sys.exit(1)


def new_record(i, run):
    now_ms = int(time.time() * 1000)
    return {
        "id": None,
        "scored_candidate": {
            "base": {
                "mint": f"Mint{run}",
                "creator": "CreatorWallet",
                "program": "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P",
                "slot": 312_000_000 + i,
                "timestamp": now_ms,
                "instruction_summary": "create+buy",
                "is_jito_bundle": False,
            },
            "predicted_score": 80,
            "feature_scores": {"liquidity": 0.5 + i / 1000},
            "reason": "python client",
            "calculation_time_us": 42,
            "anomaly_detected": False,
            "timestamp": now_ms,
        },
        "transaction_signature": f"py-{run}-{i}",
        "buy_price_sol": 0.000_000_03,
        "sell_price_sol": None,
        "amount_bought_tokens": 16_000_000.0,
        "amount_sold_tokens": None,
        "initial_sol_spent": 0.5,
        "final_sol_received": None,
        "timestamp_decision_made": now_ms,
        "timestamp_transaction_sent": None,
        "timestamp_outcome_evaluated": None,
        "actual_outcome": "PendingConfirmation",
        "market_context_snapshot": {"sol_usd": 236.4},
    }


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    token = None
    if "--token" in args:
        token = args[args.index("--token") + 1]
    client = Client(args[0], token)
    run = str(int(time.time() * 1000))

    # Put one record at a time, then 25 more as one NDJSON batch.
    stored = {}
    for i in range(5):
        record = new_record(i, run)
        record["id"] = client.put(record)
        stored[record["id"]] = record
    batch = [new_record(i, run) for i in range(5, 30)]
    answer = client.put_batch(batch)
    check(answer["errors"] == [], f"batch errors: {answer['errors']}")
    check(len(answer["ids"]) == len(batch), "one id per batch line")
    for record, record_id in zip(batch, answer["ids"]):
        record["id"] = record_id
        stored[record_id] = record

    # Read back by id and by signature: exactly what was put.
    for record_id, record in stored.items():
        check(client.get(record_id) == record, f"get {record_id}")
    first = next(iter(stored.values()))
    check(client.get_by_signature(first["transaction_signature"]) == first, "get by signature")

    # Update: the outcome and the sell side.
    first["actual_outcome"] = {"Profit": 0.076}
    first["sell_price_sol"] = 0.000_000_05
    first["final_sol_received"] = 0.576
    check(client.update(first) == first["id"], "update answers the id")
    check(client.get(first["id"]) == first, "update is read back")

    # A duplicate signature is refused with 409 and its code.
    try:
        client.put(new_record(0, run))
        check(False, "duplicate signature accepted")
    except ServiceError as e:
        check((e.status, e.code) == (409, "duplicate_signature"), str(e))
    # An unknown record is 404.
    try:
        client.get_by_signature(f"py-{run}-missing/..")
        check(False, "unknown signature found")
    except ServiceError as e:
        check((e.status, e.code) == (404, "not_found"), str(e))

    # Scan with a filter, 7 records a page: every record once, in id order.
    scanned = list(client.scan(7, mint=f"Mint{run}"))
    check([r["id"] for r in scanned] == sorted(stored), "scan returns every record in id order")
    check(all(r == stored[r["id"]] for r in scanned), "scanned records equal the stored ones")
    profits = list(client.scan(100, mint=f"Mint{run}", outcome="Profit"))
    check([r["id"] for r in profits] == [first["id"]], "outcome filter")

    # SQL over every tier: the records of this run, and their PnL (Profit counts positive).
    columns, rows = client.sql(
        f"SELECT count(*) AS n, sum(pnl) AS pnl FROM records WHERE mint = 'Mint{run}'"
    )
    check(columns == ["n", "pnl"], f"sql columns {columns}")
    check(rows == [[len(stored), 0.076]], f"sql rows {rows}")
    try:
        client.sql("DELETE FROM records")
        check(False, "a DELETE was accepted")
    except ServiceError as e:
        check((e.status, e.code) == (400, "invalid_query"), str(e))

    # Prometheus text.
    metrics = client.metrics()
    check("hot_records" in metrics and "warm_records" in metrics, "metrics text")
    warm_records = [l for l in metrics.splitlines() if l.startswith("warm_records ")]
    check(warm_records and float(warm_records[0].split()[1]) >= len(stored), "warm_records counts the puts")

    print(f"python client: {len(stored)} records put, updated, read, scanned; metrics read; all checks passed")


if __name__ == "__main__":
    main()
