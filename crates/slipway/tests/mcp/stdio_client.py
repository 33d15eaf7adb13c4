"""Drives `slipway mcp` over stdio with the official Python MCP client (the `mcp` package).

Usage: stdio_client.py SLIPWAY PASSING_REPO FAILING_REPO LONG_REPO MARKER
Prints one JSON object of what it saw; exits non-zero when an expectation fails.
"""

import json
import os
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

slipway, passing, failing, long_running, marker = sys.argv[1:6]


def processes_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (the long validation's command)."""
    found = []
    for pid in os.listdir("/proc"):
        # This script's own command line names the marker too.
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


async def main() -> None:
    seen: dict = {}
    params = StdioServerParameters(command=slipway, args=["mcp", "--no-cache"], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["protocol_version"] = init.protocol_version
            tools = await session.list_tools()
            seen["tools"] = sorted(t.name for t in tools.tools)
            validate = next(t for t in tools.tools if t.name == "validate")
            assert validate.output_schema and "failing_step" in validate.output_schema["properties"], validate
            assert "path" in validate.input_schema["properties"], validate.input_schema

            # A passing repository, with progress notifications per step.
            progress: list[str] = []
            progress_values: list[float] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")
                progress_values.append(done)

            result = await session.call_tool("validate", {"path": passing}, progress_callback=on_progress)
            assert not result.is_error, result
            report = result.structured_content
            assert report["status"] == "passed", report
            assert report["outcome"] == "passed", report
            assert report["failing_step"] is None, report
            assert "passed" in result.content[0].text, result.content
            seen["passed_steps"] = [s["name"] for s in report["steps"] if s["status"] == "passed"]
            seen["progress"] = progress
            seen["progress_values"] = progress_values

            # The same validation read again, and its log.
            again = await session.call_tool("get_validation", {"id": report["id"]})
            assert again.structured_content["id"] == report["id"], again
            logs = await session.call_tool("get_logs", {"id": report["id"], "step": "test", "limit": 5})
            assert not logs.is_error, logs
            seen["test_log"] = [line["line"] for line in logs.structured_content["lines"]]
            # Bounded, and read on after a sequence number.
            first = await session.call_tool("get_logs", {"id": report["id"], "limit": 1})
            page = first.structured_content
            assert page["more"] and len(page["lines"]) == 1, page
            rest = await session.call_tool("get_logs", {"id": report["id"], "after": page["next_after"]})
            assert rest.structured_content["lines"][0]["seq"] > page["lines"][0]["seq"], rest
            seen["log_pages"] = [len(page["lines"]), len(rest.structured_content["lines"])]

            # A failing repository: the failing step and its log tail in structuredContent.
            result = await session.call_tool("validate", {"path": failing})
            assert not result.is_error, result
            report = result.structured_content
            assert report["status"] == "failed", report
            seen["failing_step"] = report["failing_step"]
            seen["failing_text"] = result.content[0].text

            # Bad arguments: tool errors that say what to send.
            bad = await session.call_tool("validate", {"path": "/no/such/repository"})
            assert bad.is_error, bad
            seen["bad_path"] = bad.structured_content["error"]
            bad = await session.call_tool("validate", {"paht": passing})
            assert bad.is_error, bad
            seen["bad_field"] = bad.structured_content["error"]
            bad = await session.call_tool("get_logs", {"id": 1, "step": "tests"})
            seen["bad_step"] = bad.structured_content["error"]

            # A long validation, cancelled once its test step runs: nothing of it may remain.
            started = anyio.Event()

            async def on_long_progress(done: float, total: float | None, message: str | None) -> None:
                if message == "test running":
                    started.set()

            async with anyio.create_task_group() as group:

                async def long_call() -> None:
                    await session.call_tool("validate", {"path": long_running}, progress_callback=on_long_progress)

                group.start_soon(long_call)
                with anyio.fail_after(120):
                    await started.wait()
                    while not processes_with(marker):
                        await anyio.sleep(0.05)
                seen["running_before_cancel"] = len(processes_with(marker))
                group.cancel_scope.cancel()
            deadline = time.monotonic() + 60
            while processes_with(marker) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            seen["left_after_cancel"] = processes_with(marker)
            # The validation itself ended as cancelled (the newest one is the long one).
            newest = report["id"] + 1
            for _ in range(600):
                state = await session.call_tool("get_validation", {"id": newest})
                if state.structured_content["status"] != "running":
                    break
                await anyio.sleep(0.1)
            seen["cancelled_status"] = state.structured_content["status"]
    print(json.dumps(seen))


anyio.run(main)
