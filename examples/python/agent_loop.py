#!/usr/bin/env python3
"""A scripted agent loop on the agentjail Python client.

It writes a small Python project with two bugs, runs its tests in the
sandbox, reads the failure, edits the code, and runs the tests again until
they pass. Exits 0 when green. The "model" is a table of fixes, so it runs
anywhere without network; a real agent would send the failure to an LLM.

    pip install ./clients/python
    python3 examples/python/agent_loop.py            # the default daemon
    python3 examples/python/agent_loop.py --socket /tmp/aj.sock

Works on the default policy: `python3` is an allowed program, and the
sandbox sees the workspace at /workspace.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import agentjail

CALC = """\
def add(a, b):
    return a - b


def mul(a, b):
    return a + b
"""

TESTS = """\
import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(4, 5), 20)


if __name__ == "__main__":
    unittest.main()
"""

# What the "model" answers when told which function's test failed.
FIXES = {"add": ("a - b", "a + b"), "mul": ("a + b", "a * b")}
MAX_ROUNDS = 5


def run_tests(aj: agentjail.Client, project: str) -> agentjail.CommandResult:
    result = aj.commands.run(["python3", "-B", "-m", "unittest", "-v"], cwd=project, timeout=60)
    print(f"$ python3 -m unittest  -> {result.error or 'passed'} ({result.wall_time_ms} ms)")
    return result


def first_failure(output: str) -> str:
    """The function whose test failed first, from unittest's report."""
    match = re.search(r"^(?:FAIL|ERROR): test_(\w+) ", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"cannot tell what failed:\n{output}")
    return match.group(1)


def fix(aj: agentjail.Client, project: str, function: str) -> None:
    # Find the function the way an agent would, then edit its body, with the
    # `def` line as context so the edit matches exactly one place.
    hits = aj.files.grep(rf"def {function}\(", path=project, output="content", context_after=1).lines
    header = next(h for h in hits if h.is_match)
    body = next(h for h in hits if not h.is_match and h.line_number == header.line_number + 1)
    old, new = FIXES[function]
    print(f"  {body.path}:{body.line_number}: {body.text.strip()!r}: replacing {old!r} with {new!r}")
    snippet = header.text.rstrip("\n") + "\n" + body.text.rstrip("\n")
    seen = aj.files.read_window(body.path)
    edit = aj.files.edit(body.path, snippet, snippet.replace(old, new), expected_sha256=seen.sha256)
    changed = [line for line in edit.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    print("  " + "\n  ".join(changed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="daemon socket (default: as the agentjail CLI finds it)")
    args = parser.parse_args()
    with agentjail.connect(args.socket) as aj:
        me = aj.whoami()
        print(f"agent {me.agent}, workspace {me.workspaces[0].name} at {me.workspaces[0].path}")
        project = f"agent-loop-{os.getpid()}-{int(time.time())}"
        aj.files.write(f"{project}/calc.py", CALC)
        aj.files.write(f"{project}/test_calc.py", TESTS)
        try:
            for round_ in range(1, MAX_ROUNDS + 1):
                print(f"round {round_}")
                result = run_tests(aj, project)
                if result.ok:
                    print("green: every test passes")
                    return 0
                fix(aj, project, first_failure(result.stderr))
            print(f"still failing after {MAX_ROUNDS} rounds", file=sys.stderr)
            return 1
        finally:
            aj.files.remove(project, recursive=True, missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
