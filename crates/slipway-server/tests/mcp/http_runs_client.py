"""Drives `/mcp` as an operator's coding agent over streamable HTTP with the official Python
MCP client: starts an agent run, confirms its plan and follows it to its end, then cancels a
long validation by cancelling the request.

Usage: http_runs_client.py URL OPERATOR_TOKEN RUN_PROJECT SLOW_PROJECT MARKER
Prints one JSON object of what it saw; exits non-zero when an expectation fails.
"""

import json
import os
import sys
import time

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

url, operator, run_project, slow_project, marker = sys.argv[1:6]


def processes_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (the long validation's command)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


async def run_until(session: ClientSession, run_id: int, states: set[str]) -> dict:
    with anyio.fail_after(240):
        while True:
            got = await session.call_tool("get_run", {"id": run_id})
            assert not got.is_error, got
            if got.structured_content["status"] in states:
                return got.structured_content
            await anyio.sleep(0.2)


async def main() -> None:
    seen: dict = {}
    headers = {"Authorization": f"Bearer {operator}"}
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()

                # A run: its plan is shown, confirmed over MCP, and carried out.
                started = await session.call_tool(
                    "start_run", {"project": run_project, "goal": "Write fixed to value.txt"}
                )
                assert not started.is_error, started
                run_id = started.structured_content["id"]
                seen["planned"] = await run_until(session, run_id, {"awaiting_input", "failed"})
                early = await session.call_tool("reply_to_run", {"id": run_id, "action": "continue", "text": "x"})
                seen["continue_a_plan"] = early.structured_content["error"]
                confirmed = await session.call_tool("reply_to_run", {"id": run_id, "action": "confirm"})
                assert not confirmed.is_error, confirmed
                seen["ended"] = await run_until(session, run_id, {"succeeded", "failed", "cancelled"})

                # A long validation, cancelled once its test step runs.
                running = anyio.Event()

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    if message == "test running":
                        running.set()

                async with anyio.create_task_group() as group:

                    async def long_call() -> None:
                        await session.call_tool(
                            "validate", {"project": slow_project, "branch": "main"}, progress_callback=on_progress
                        )

                    group.start_soon(long_call)
                    with anyio.fail_after(120):
                        await running.wait()
                        while not processes_with(marker):
                            await anyio.sleep(0.05)
                    seen["running_before_cancel"] = len(processes_with(marker))
                    group.cancel_scope.cancel()
                deadline = time.monotonic() + 60
                while processes_with(marker) and time.monotonic() < deadline:
                    await anyio.sleep(0.1)
                seen["left_after_cancel"] = processes_with(marker)
    print(json.dumps(seen))


anyio.run(main)
