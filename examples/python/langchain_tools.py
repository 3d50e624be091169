"""agentjail's tools as LangChain tools: `llm.bind_tools(agentjail_tools(agentjail.connect()))`."""

import functools

from langchain_core.tools import BaseTool, tool

import agentjail


def agentjail_tools(aj: agentjail.Client) -> "list[BaseTool]":
    """Run by the daemon under its policy; a refusal becomes the answer, with reason and next step."""

    def read_file(path: str) -> str:
        """Read a text file; the path is relative to the workspace root."""
        return aj.files.read(path)

    def write_file(path: str, content: str) -> str:
        """Create or replace a file with the content."""
        return f"wrote {aj.files.write(path, content).bytes_written} bytes to {path}"

    def edit_file(path: str, old: str, new: str) -> str:
        """Replace the exact text old, which must occur once, with new; returns the diff."""
        return aj.files.edit(path, old, new).diff

    def run_command(command: str, cwd: str = "") -> str:
        """Run a shell command in the sandbox; returns how it ended, stdout and stderr."""
        return aj.commands.run(command, cwd=cwd or None).summary()

    def refusal_as_text(fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return fn(*args, **kwargs)
            except agentjail.AgentjailError as e:
                return f"error: {e}"

        return wrapper

    return [tool(refusal_as_text(f)) for f in (read_file, write_file, edit_file, run_command)]
