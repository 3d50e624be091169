"""A session, as an agent uses one: open it, cd and export, start a dev
server in the background, test it from another command of the session, read
the server's log, close. Runs against the default daemon and policy:

    AGENTJAIL_SOCKET=/run/agentjail/agentjail.sock python3 examples/python/session_dev_server.py
"""

from __future__ import annotations

import sys
import uuid

import agentjail

CHECK = """\
import os, time, urllib.request
url = f"http://127.0.0.1:{os.environ['PORT']}/index.html"
for _ in range(100):
    try:
        print(urllib.request.urlopen(url).read().decode().strip())
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit(f"nothing answers at {url}")
"""


def main() -> int:
    project = f"session-demo-{uuid.uuid4().hex[:8]}"
    with agentjail.connect() as aj:
        aj.files.write(f"{project}/site/index.html", "hello from the dev server\n")
        aj.files.write(f"{project}/check.py", CHECK)
        with aj.sessions.open(cwd=project) as s:
            print(f"session {s.id} opened in {s.info.cwd}")
            s.run("cd site && export PORT=8000", check=True)
            print("$ pwd; echo $PORT ->", s.run("pwd; echo $PORT").stdout.split())
            server = s.start("exec python3 -m http.server $PORT --bind 127.0.0.1")
            print(f"server started: process {server.id}, pid {server.pid} on the host")
            answer = s.run("python3 ../check.py", timeout=30, check=True).stdout.strip()
            print(f"the server answered: {answer!r}")
            log = b""
            while b"GET /index.html" not in log:
                log += server.read("stderr", wait=5).data
            print("server log:", log.decode().strip().splitlines()[-1])
            server.terminate()
            print("server ended by signal", server.wait(timeout=10).exited.signal)
        print(f"session closed ({s.info.ended})")
        aj.files.remove(project, recursive=True)
    return 0 if answer == "hello from the dev server" else 1


if __name__ == "__main__":
    sys.exit(main())
