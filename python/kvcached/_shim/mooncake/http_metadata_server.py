"""kvcached's stand-in for `mooncake.http_metadata_server`: the metadata HTTP
service of Mooncake's deployment recipes, served by `kvcached meta` (same
protocol: GET/PUT/DELETE /metadata?key=K).

    python -m mooncake.http_metadata_server [--port 8080] [--host 127.0.0.1]
                                            [--log-level INFO]

runs `kvcached meta` in this process's place (exec), so signals and the exit
status are the service's own. One difference from Mooncake, on purpose: the
default address is loopback, not 0.0.0.0. Serving beyond loopback needs a
cluster token (--token-file) or an explicit --insecure, as everywhere in
kvcached; `kvcached meta` says so and exits 78 otherwise.

The `kvcached` program is $KVCACHED_BIN, else build/kvcached of the source
tree this package sits in, else `kvcached` on PATH.

KVBootstrapServer(port, host).run() / .poll() / .close() start and stop the
same service from Python, as Mooncake's class of that name does.
"""

import argparse
import enum
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error",
           "CRITICAL": "critical"}


def kvcached_program():
    """The path of the `kvcached` program this module runs; FileNotFoundError
    (with what was tried) when there is none."""
    tried = []
    env = os.environ.get("KVCACHED_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise FileNotFoundError(f"$KVCACHED_BIN={env} is not an executable file")
    # <repo>/python/kvcached/_shim/mooncake/this file -> <repo>/build/kvcached
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", "..", "..", ".."))
    if os.path.isfile(os.path.join(repo, "CMakeLists.txt")) and os.path.isdir(
            os.path.join(repo, "python", "kvcached")):
        built = os.path.join(repo, "build", "kvcached")
        if os.access(built, os.X_OK):
            return built
        tried.append(built)
    found = shutil.which("kvcached")
    if found:
        return found
    tried.append("kvcached on PATH")
    raise FileNotFoundError("no kvcached program: tried $KVCACHED_BIN, " + ", ".join(tried) +
                            "; install the kvcached package or set KVCACHED_BIN")


def meta_command(port=8080, host="127.0.0.1", log_level="INFO", extra=()):
    """The `kvcached meta` command line for these settings."""
    level = _LEVELS.get(str(log_level).upper())
    if level is None:
        raise ValueError(f"log level {log_level!r}: one of {', '.join(_LEVELS)}")
    return [kvcached_program(), "meta", "--port", str(int(port)), "--host", host,
            "--log-level", level, *extra]


class KVPoll(enum.Enum):
    """The service's state, as Mooncake's module names it."""
    Failed = 0
    Bootstrapping = 1
    WaitingForInput = 2
    Transferring = 3
    Success = 4


class KVBootstrapServer:
    """The metadata service in a child process: run() starts it and returns
    once it answers /health (RuntimeError when it exits or does not answer
    within 10 s), poll() says whether it still runs, close() stops it."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.port = port
        self.host = host
        self._proc = None

    def run(self):
        self._proc = subprocess.Popen(meta_command(self.port, self.host))
        url = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}/health"
        deadline = time.monotonic() + 10
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"kvcached meta exited with status {self._proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        logging.info("HTTP metadata service on %s:%d", self.host, self.port)
                        return self._proc
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"kvcached meta did not answer {url} within 10 s")
            time.sleep(0.05)

    def poll(self) -> KVPoll:
        if self._proc is None or self._proc.poll() is not None:
            return KVPoll.Failed
        return KVPoll.Success

    def close(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m mooncake.http_metadata_server",
        description="Mooncake's HTTP metadata service, served by 'kvcached meta'. "
                    "Beyond loopback it needs --token-file (or --insecure).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="Port to listen on")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (Mooncake's default is 0.0.0.0; "
                             "kvcached's is loopback unless a token protects the service)")
    parser.add_argument("--log-level", default="INFO", choices=list(_LEVELS),
                        help="Logging level")
    parser.add_argument("--token-file", help="File holding the cluster token (kvcached meta)")
    parser.add_argument("--insecure", action="store_true",
                        help="Serve beyond loopback without a token (kvcached meta)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    extra = []
    if args.token_file:
        extra += ["--token-file", args.token_file]
    if args.insecure:
        extra.append("--insecure")
    try:
        cmd = meta_command(args.port, args.host, args.log_level, extra)
    except FileNotFoundError as e:
        print(f"mooncake.http_metadata_server: {e}", file=sys.stderr)
        return 69
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
