#!/usr/bin/env python3
"""Does trading volume move with volatility? Reads a symbol's 1m candles (and, optionally, its
trades) from a StreamForge store — the SQLite file or PostgreSQL — into pandas, and prints as JSON
the hourly correlation between volume and realized volatility.

    python3 docs/examples/volume_volatility.py --sqlite data/streamforge.db \
        --candles btcusdt_api_candles_1m_2021_04_24 --symbol BTCUSDT
    python3 docs/examples/volume_volatility.py --postgres postgres://postgres@127.0.0.1:5432/streamforge \
        --candles btcusdt_api_candles_1m_2021_04_24 --symbol BTCUSDT

Needs pandas (and psycopg for PostgreSQL): pip install pandas "psycopg[binary]".
Returns are taken only between consecutive minutes: a missing candle (an exchange outage) breaks
the series instead of being bridged; hours with fewer than 30 returns are left out.
"""

import argparse
import json
import math
import sqlite3

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MIN_RETURNS_PER_HOUR = 30


def connect(args):
    """A DB-API connection and its parameter placeholder."""
    if args.sqlite:
        return sqlite3.connect(args.sqlite), "?"
    import psycopg  # only needed for PostgreSQL

    return psycopg.connect(args.postgres), "%s"


def read(conn, mark, sql, params):
    # Prices and quantities are exact decimals in the store (TEXT in SQLite, NUMERIC in
    # PostgreSQL); floats are fine for statistics.
    return pd.read_sql_query(sql.replace("?", mark), conn, params=params)


def hourly_volume_and_volatility(candles):
    c = candles.sort_values("open_time").reset_index(drop=True)
    close = c["close"].astype(float)
    ret = np.log(close / close.shift())
    consecutive = c["open_time"].diff() == MINUTE_MS
    c["ret2"] = (ret**2).where(consecutive)
    c["volume"] = c["volume"].astype(float)
    c["hour"] = c["open_time"] // HOUR_MS
    hours = c.groupby("hour").agg(volume=("volume", "sum"), ret2=("ret2", "sum"), returns=("ret2", "count"))
    hours = hours[hours["returns"] >= MIN_RETURNS_PER_HOUR]
    hours["realized_vol"] = np.sqrt(hours["ret2"])
    return hours


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sqlite", help="path of the SQLite file (store.url = sqlite://PATH)")
    src.add_argument("--postgres", help="PostgreSQL URL (store.url)")
    p.add_argument("--candles", required=True, help="collection of 1m candles")
    p.add_argument("--trades", help="collection of (aggregate) trades, optional")
    p.add_argument("--symbol", required=True)
    args = p.parse_args()

    conn, mark = connect(args)
    candles = read(
        conn,
        mark,
        f"SELECT open_time, close, volume FROM {args.candles} WHERE symbol = ? ORDER BY open_time",
        (args.symbol,),
    )
    hours = hourly_volume_and_volatility(candles)
    pearson = hours["volume"].corr(hours["realized_vol"])
    # Spearman as the Pearson correlation of ranks (no SciPy needed).
    spearman = hours["volume"].rank().corr(hours["realized_vol"].rank())
    out = {
        "symbol": args.symbol,
        "candles": int(len(candles)),
        "hours": int(len(hours)),
        "pearson": None if math.isnan(pearson) else float(pearson),
        "spearman": None if math.isnan(spearman) else float(spearman),
    }
    if args.trades:
        trades = read(
            conn,
            mark,
            f"SELECT id, price, qty, time, is_buyer_maker FROM {args.trades} WHERE symbol = ? ORDER BY id",
            (args.symbol,),
        )
        qty = trades["qty"].astype(float)
        taker_buys = qty[~trades["is_buyer_maker"].astype(bool)].sum()
        out["trades"] = int(len(trades))
        out["taker_buy_share"] = float(taker_buys / qty.sum()) if len(trades) else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
