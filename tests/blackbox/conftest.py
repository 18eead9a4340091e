"""Black-box harness: starts the real `kvcached` binary on a free loopback
port and waits for its readiness signal (the sd_notify datagram READY=1 on
a NOTIFY_SOCKET the test owns), then tests speak HTTP to it with curl, raw
sockets or http.client, as users would."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("KVCACHED_BIN") or shutil.which("kvcached")

START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 30


class Proc:
    """One running kvcached process with its stderr captured to a file."""

    def __init__(self, args, env=None, cwd=None, journal=False):
        self.tmp = tempfile.mkdtemp(prefix="kvcached-test-")
        self.notify_path = os.path.join(self.tmp, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("KVCACHED_", "MOONCAKE_", "JOURNAL_STREAM"))}
        full_env.update(env or {})
        full_env["NOTIFY_SOCKET"] = self.notify_path
        if journal:
            # As systemd does: JOURNAL_STREAM names stderr's device:inode.
            st = os.fstat(self.stderr.fileno())
            full_env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        self.proc = subprocess.Popen([BIN] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     env=full_env, cwd=cwd)
        self.url = None
        self.port = None
        self.messages = []

    def wait_ready(self):
        """Blocks until READY=1 arrives, or fails if the process exits first."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.notify.settimeout(0.2)
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    pytest.fail(f"kvcached exited with {self.proc.returncode} before ready:\n"
                                + self.log())
                continue
            self.messages.append(msg)
            if "READY=1" in msg.split("\n"):
                m = re.search(r"STATUS=.*?(http://[^/\s]+:(\d+))", msg)
                assert m, f"READY without an address in STATUS: {msg!r}"
                self.url = m.group(1)
                self.port = int(m.group(2))
                return self
        pytest.fail("kvcached did not become ready in time:\n" + self.log())

    def next_notify(self, timeout_s=STOP_TIMEOUT_S):
        self.notify.settimeout(timeout_s)
        msg = self.notify.recv(4096).decode()
        self.messages.append(msg)
        return msg

    def log(self):
        if self.stderr.closed:
            return self.log_text
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout_s=10):
        """Polls the captured stderr for a line matching `pattern`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if re.search(pattern, self.log(), re.M):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        pytest.fail(f"no log line matching {pattern!r}:\n" + self.log())

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        finally:
            self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.log_text = self.log()
        self.notify.close()
        self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def start_meta():
    """start_meta(*args, env=None) -> ready Proc on a free loopback port."""
    procs = []

    def start(*args, env=None, port="0"):
        p = Proc(["meta", "--port", port] + list(args), env=env)
        procs.append(p)
        return p.wait_ready()

    yield start
    for p in procs:
        p.close()


@pytest.fixture
def meta(start_meta):
    return start_meta()


def run_cli(*args, env=None, timeout=30):
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("KVCACHED_", "MOONCAKE_", "NOTIFY_SOCKET"))}
    full_env.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=full_env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class CurlResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for line in self.headers.splitlines():
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


def curl(*args, data=None):
    """Runs curl and returns status, response headers and body bytes."""
    with tempfile.TemporaryDirectory() as d:
        body_path = os.path.join(d, "body")
        head_path = os.path.join(d, "head")
        cmd = ["curl", "-s", "-S", "--max-time", "20", "-o", body_path, "-D", head_path,
               "-w", "%{http_code}"] + list(args)
        if data is not None:
            data_path = os.path.join(d, "data")
            with open(data_path, "wb") as f:
                f.write(data)
            cmd += ["--data-binary", "@" + data_path]
        out = subprocess.run(cmd, capture_output=True, timeout=30)
        assert out.returncode == 0, f"curl failed: {out.stderr.decode()}"
        status = int(out.stdout.decode())
        with open(body_path, "rb") as f:
            body = f.read() if os.path.exists(body_path) else b""
        with open(head_path) as f:
            headers = f.read()
        return CurlResult(status, headers, body)


def raw_exchange(port, payload, timeout_s=10, shutdown_write=False):
    """Sends raw bytes, returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(payload)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw)
    assert m, f"not an HTTP response: {raw[:200]!r}"
    return int(m.group(1))
