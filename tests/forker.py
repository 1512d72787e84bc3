"""Start, kill and wait for real ``poolkit`` processes without paying torch's import each time.

A helper process imports torch, matplotlib and the CLI once, then forks one ``poolkit`` command
per request (a JSON line on its stdin: argv, env, output files) and prints the child's pid; a
request ``{"wait": pid}`` prints that child's exit status (``-9`` for SIGKILL). The children are
separate processes, killed with ``os.kill`` like any other; forking spares each one the seconds
of importing torch, so a test can kill and restart a command a dozen times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import torch
{setup}
import poolkit.cli.compare, poolkit.cli.train, poolkit.experiments.compare
from poolkit.cli import run
for line in sys.stdin:
    job = json.loads(line)
    if "wait" in job:
        _, status = os.waitpid(job["wait"], 0)
        print(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status),
              flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.environ.update(job["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        code = run(job["argv"])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
"""


class Forker:
    """The helper process, for one test (``close`` it at the end)."""

    def __init__(self, folder: Path, setup: str = "") -> None:
        script = folder / "forker.py"
        script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), setup=setup))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        env["POOLKIT_PROGRESS"] = "0"
        self.folder = folder
        self.process = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.started = 0

    def _ask(self, request: dict) -> int:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the forker process died"
        return int(answer)

    def start(self, argv: list[str], **env: str) -> tuple[int, Path, Path]:
        """Fork ``poolkit ARGV``; returns its pid and the files of its stdout and stderr."""
        self.started += 1
        stdout = self.folder / f"out-{self.started}.txt"
        stderr = self.folder / f"err-{self.started}.txt"
        job = {"argv": argv, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        return self._ask(job), stdout, stderr

    def wait(self, pid: int) -> int:
        """The exit status of a started command (negative: killed by that signal)."""
        return self._ask({"wait": pid})

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)
