"""`bench/mcp.sh`'s client: a trivial validation through `slipway mcp` (the official Python MCP
client), timed from the call to the report, in a session already open and as a whole session
(start, initialize, validate, exit); and `tools/list`, 200 calls.

Usage: mcp_client.py SLIPWAY REPO RUNS   Prints one line per figure, in milliseconds.
"""

import os
import statistics
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

slipway, repo, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
params = StdioServerParameters(command=slipway, args=["mcp"], env=dict(os.environ, SLIPWAY_LOG="warn"))


def ms(seconds: list[float]) -> dict:
    values = sorted(s * 1000 for s in seconds)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return {
        "min": round(values[0], 2),
        "median": round(statistics.median(values), 2),
        "p99": round(p99, 2),
        "max": round(values[-1], 2),
    }


async def main() -> None:
    calls, lists, sessions = [], [], []
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            for _ in range(200):
                t0 = time.perf_counter()
                await session.list_tools()
                lists.append(time.perf_counter() - t0)
            for _ in range(runs):
                t0 = time.perf_counter()
                result = await session.call_tool("validate", {"path": repo})
                calls.append(time.perf_counter() - t0)
                assert result.structured_content["status"] == "passed", result
    for _ in range(runs):
        t0 = time.perf_counter()
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("validate", {"path": repo})
                assert result.structured_content["status"] == "passed", result
        sessions.append(time.perf_counter() - t0)
    for what, times in [
        ("slipway mcp: validate call in an open session", calls),
        ("slipway mcp: whole session (start, initialize, validate, exit)", sessions),
        ("slipway mcp: tools/list (200 calls)", lists),
    ]:
        f = ms(times)
        print(f"{what}: min {f['min']} ms, median {f['median']} ms, p99 {f['p99']} ms, max {f['max']} ms")


anyio.run(main)
