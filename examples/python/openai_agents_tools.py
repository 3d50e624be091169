"""agentjail's tools for the OpenAI Agents SDK: `Agent(tools=agentjail_tools(agentjail.connect()))`."""

import functools

from agents import FunctionTool, function_tool
import agentjail

function_tool = functools.partial(function_tool, failure_error_function=lambda _ctx, e: f"error: {e}")


def agentjail_tools(aj: agentjail.Client) -> "list[FunctionTool]":
    """Run under the daemon's policy; a refusal reaches the model as text (the SDK would hide it)."""

    @function_tool()
    def read_file(path: str) -> str:
        """Read a text file; the path is relative to the workspace root."""
        return aj.files.read(path)

    @function_tool()
    def write_file(path: str, content: str) -> str:
        """Create or replace a file with the content."""
        return f"wrote {aj.files.write(path, content).bytes_written} bytes to {path}"

    @function_tool()
    def edit_file(path: str, old: str, new: str) -> str:
        """Replace the exact text old, which must occur once, with new; returns the diff."""
        return aj.files.edit(path, old, new).diff

    @function_tool()
    def list_directory(path: str = "", depth: int = 1) -> "list[str]":
        """List the paths below a directory ("" is the workspace root)."""
        return [e.path for e in aj.files.list(path, depth=depth)]

    @function_tool()
    def run_command(command: str, cwd: str = "", timeout_seconds: float = 60) -> str:
        """Run a shell command in the sandbox; returns how it ended, stdout and stderr."""
        return aj.commands.run(command, cwd=cwd or None, timeout=timeout_seconds).summary()

    return [read_file, write_file, edit_file, list_directory, run_command]
