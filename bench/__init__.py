"""Benchmarks of lsready's promises: ack latency, triage wall time, ClickHouse cost, check time, memory.

Run them all with `python -m bench` (see bench/README.md). Each bench runs in a subprocess of its
own (the embedded ClickHouse opens one data path per process) under a time limit, against real
engines started on this machine, loopback only.
"""
