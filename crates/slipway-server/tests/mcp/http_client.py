"""Drives `/mcp` over streamable HTTP with the official Python MCP client (the `mcp` package).

Usage: http_client.py URL OPERATOR_TOKEN VIEWER_TOKEN PROJECT BRANCH
Prints one JSON object of what it saw; exits non-zero when an expectation fails.
"""

import json
import sys

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

url, operator, viewer, project, branch = sys.argv[1:6]


def client(token: str | None, statuses: list[int]) -> httpx2.AsyncClient:
    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, event_hooks={"response": [record]}, timeout=120)


async def session_of(token: str | None, statuses: list[int], work) -> object:
    async with client(token, statuses) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)


async def refused(token: str | None, work) -> list[int]:
    """The HTTP statuses seen when the client's work fails (it must)."""
    statuses: list[int] = []
    try:
        with anyio.fail_after(60):
            await session_of(token, statuses, work)
    except Exception:  # the client raises on 401/403; the statuses say which
        return statuses
    raise AssertionError(f"the work was not refused: {statuses}")


async def main() -> None:
    seen: dict = {}

    # Without a token: 401 before any MCP message is read.
    seen["without_token"] = await refused(None, lambda s: s.list_tools())

    # A viewer reads: the tools it may call, the projects.
    async def read(session: ClientSession) -> dict:
        tools = await session.list_tools()
        projects = await session.call_tool("list_projects", {})
        assert not projects.is_error, projects
        missing = await session.call_tool("get_run", {"id": 999999})
        return {
            "tools": sorted(t.name for t in tools.tools),
            "projects": [p["name"] for p in projects.structured_content["projects"]],
            "missing_run": missing.structured_content["error"],
        }

    viewer_statuses: list[int] = []
    seen["viewer"] = await session_of(viewer, viewer_statuses, read)

    # A viewer's validate: 403.
    seen["viewer_validate"] = await refused(
        viewer, lambda s: s.call_tool("validate", {"project": project, "branch": branch})
    )

    # An operator validates a project's branch, with progress.
    async def validate(session: ClientSession) -> dict:
        progress: list[str] = []
        progress_values: list[float] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")
            progress_values.append(done)

        tools = await session.list_tools()
        result = await session.call_tool(
            "validate", {"project": project, "branch": branch}, progress_callback=on_progress
        )
        assert not result.is_error, result
        bad = await session.call_tool("validate", {"project": project})
        unknown = await session.call_tool("validate", {"project": "no-such-project", "branch": "main"})
        reply = await session.call_tool("reply_to_run", {"id": 1, "action": "continue"})
        return {
            "tools": sorted(t.name for t in tools.tools),
            "report": result.structured_content,
            "progress": progress,
            "progress_values": progress_values,
            "neither_branch_nor_sha": bad.structured_content["error"],
            "unknown_project": unknown.structured_content["error"],
            "reply_without_text": reply.structured_content["error"],
        }

    operator_statuses: list[int] = []
    seen["operator"] = await session_of(operator, operator_statuses, validate)
    print(json.dumps(seen))


anyio.run(main)
