"""Snakemake's CLI run in forks of one process that has imported it once.

``python snakemake_forks.py`` reads one request a line on stdin (JSON: argv, cwd, env, output,
timeout) and answers each with a line ``{"returncode": N}`` once a fork of itself has run
``snakemake.cli.main(argv)``, what ``python -m snakemake`` runs, in ``cwd`` with ``env``, its
stdout and stderr both to the file ``output``. Each fork starts from this process as it was
before any request: Snakemake and its plugins imported, nothing of a workflow. That saves the
1.5 s of CPU the interpreter, Snakemake and its executor plugins take to start, on every run.

The workflow's own package is not imported here: the Snakefile puts its own ``src/`` first on
the path, and an edited copy of the workflow must be the one that runs. This process's one
other thread is OpenBLAS's (NumPy's), which prepares for a fork as for multiprocessing's.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import snakemake.cli


def run(request: dict[str, Any]) -> None:
    """The fork's side: as ``python -m snakemake`` would start in ``cwd``; never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # what -m puts first, not this file's folder
        sys.argv = [str(Path(snakemake.__file__).with_name("__main__.py")), *request["argv"]]
        signal.alarm(request["timeout"])  # ends this fork, as subprocess.run's timeout would
        output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        snakemake.cli.main(request["argv"])
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    snakemake.cli.get_argument_parser()  # the executor plugins found here, once
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            run(json.loads(line))
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
