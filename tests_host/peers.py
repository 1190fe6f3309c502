# Real TLS peers for tests: `openssl s_server` on 127.0.0.1 with a free port.
#
#   with OpenSSLServer.psk(psk_hex, "Client_identity") as server:
#       ... connect to 127.0.0.1:server.port ...
#
# -rev makes s_server send every line back reversed, so a test sees that data went both ways
# and was not just looped back by the emulator.

import os
import select
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Terminate a peer process, and kill it if it does not go within 5 s.
def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class OpenSSLServer:
    def __init__(self, args, detach=False, ready_s=10):
        self.args = list(args)
        self.detach = detach
        self.ready_s = ready_s
        self.port = None
        self.proc = None
        self.output = b""

    # A TLS 1.2 PSK server limited to one suite (OpenSSL's name for it).
    @classmethod
    def psk(cls, psk_hex, identity, cipher="PSK-AES128-GCM-SHA256", extra=(), **kw):
        args = ["-tls1_2", "-nocert", "-psk", psk_hex, "-psk_identity", identity]
        return cls(args + ["-cipher", cipher, "-rev"] + list(extra), **kw)

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        # A free port can be taken between the probe and the bind: try a few.
        for _ in range(5):
            self.port = free_port()
            cmd = ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}"] + self.args
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )
            if self._wait_ready():
                if self.detach:
                    # Nobody will read the pipe: hand s_server's output to /dev/null instead
                    # of letting a full pipe block it.
                    self._drain_in_background()
                return self
            self.stop()
        raise RuntimeError(
            "openssl s_server did not start: " + self.output.decode(errors="replace")
        )

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_s
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.output += self.proc.stdout.read() or b""
                return False
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                self.output += os.read(fd, 4096)
                if b"ACCEPT" in self.output:
                    return True
        return False

    def _drain_in_background(self):
        if os.fork() == 0:
            try:
                while os.read(self.proc.stdout.fileno(), 4096):
                    pass
            finally:
                os._exit(0)

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
