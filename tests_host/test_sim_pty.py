# st87-sim as a separate process: over a pty (what the MicroPython unix port opens) and over
# a loopback TCP port.

import os
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import time
import tty

import pytest
from sim_helpers import VECTORS

SIM = os.path.join(os.path.dirname(sys.executable), "st87-sim")
PSK_HEX = VECTORS["psk_4_2"]


class Sim:
    def __init__(self, *args):
        self.proc = subprocess.Popen([SIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.first_line = self.proc.stdout.readline().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.stderr = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


# A raw, non-blocking-read client end, as the unix port sets its UART up.
class PtyClient:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)  # TCSAFLUSH would drop what is waiting
        attrs = termios.tcgetattr(self.fd)
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.buf = b""

    def write(self, data):
        os.write(self.fd, data)

    def read_some(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 4096) if ready else b""

    def close(self):
        os.close(self.fd)


class TcpClient:
    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=5)

    def write(self, data):
        self.sock.sendall(data)

    def read_some(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.sock.recv(4096) if ready else b""

    def close(self):
        self.sock.close()


# Send `line` until its final result is not "still booting"; return that reply.
def command(client, line, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.write(line + b"\r")
        got = b""
        end = time.monotonic() + 1
        while time.monotonic() < end:
            got += client.read_some(0.05)
            m = re.search(rb"\r\n(OK|ERROR|\+CME ERROR[^\r]*)\r\n", got)
            if m:
                if m.group(1) != b"+CME ERROR: 1120":
                    return got[: m.end()]  # URCs after it are not this test's business
                break
        time.sleep(0.05)
    raise AssertionError(f"no reply to {line!r}")


@pytest.fixture
def sims():
    started = []

    def start(*args):
        sim = Sim(*args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        if sim.proc.poll() is None:
            sim.stop()


def test_pty_mode_answers_at(sims, tmp_path):
    sim = sims("--pty", "--route", "192.168.21.4:4433=127.0.0.1:5555", "-v")
    m = re.fullmatch(r"pty: (/dev/\S+)\n", sim.first_line)
    assert m, sim.first_line
    client = PtyClient(m.group(1))
    try:
        assert command(client, b"AT").endswith(b"AT\r\r\nOK\r\n")  # echo is still on
        assert command(client, b"ATE0").endswith(b"\r\nOK\r\n")
        assert command(client, b"AT+CMEE?") == b"\r\n+CMEE: 1\r\n\r\nOK\r\n"
        # The tty does not touch the bytes in either direction: a bare CR stays a CR.
        assert command(client, b"AT+CFUN=4").startswith(b"\r\nOK\r\n")
        reply = command(client, b"AT#TLSKEYADD=0,1,2,4,32," + PSK_HEX.encode())
        assert reply.endswith(b"\r\nOK\r\n")
    finally:
        client.close()
    assert sim.stop() == 0
    assert "AT#TLSKEYADD=0,1,2,4,32,<32 bytes>" in sim.stderr
    assert PSK_HEX not in sim.stderr.lower()


def test_pty_output_before_the_client_opens_is_harmless(sims):
    sim = sims("--pty")
    path = sim.first_line.split()[1]
    time.sleep(0.4)  # boot and attach URCs go out with nobody on the slave
    client = PtyClient(path)
    try:
        got = command(client, b"AT")
        assert got.endswith(b"AT\r\r\nOK\r\n")
        assert b"#REBOOT_RESET" in got  # kept in the tty until the client read it
    finally:
        client.close()
    # A second client on the same pty is served too.
    client = PtyClient(path)
    try:
        assert command(client, b"AT").endswith(b"\r\nOK\r\n")
    finally:
        client.close()


def test_state_file_survives_a_process_restart(sims, tmp_path):
    state = str(tmp_path / "its.json")
    sim = sims("--pty", "--state", state)
    client = PtyClient(sim.first_line.split()[1])
    command(client, b"ATE0")
    command(client, b"AT+CFUN=4")
    assert command(client, b"AT#TLSKEYADD=2,1,2,4,32," + PSK_HEX.encode()).endswith(b"OK\r\n")
    assert command(client, b"AT#RESET=1").endswith(b"\r\nOK\r\n")
    client.close()
    assert sim.stop() == 0

    sim = sims("--pty", "--state", state)
    client = PtyClient(sim.first_line.split()[1])
    command(client, b"ATE0")
    assert command(client, b"AT#TLSKEYLIST") == b"\r\n#TLSKEYLIST: 2,1,0,0,256\r\n\r\nOK\r\n"
    client.close()


def test_tcp_mode_serves_one_client_at_a_time(sims):
    sim = sims("--tcp", "127.0.0.1:0", "--profile", "fw31-alt")
    m = re.fullmatch(r"tcp: 127\.0\.0\.1:(\d+)\n", sim.first_line)
    assert m, sim.first_line
    client = TcpClient(("127.0.0.1", int(m.group(1))))
    try:
        got = command(client, b"AT")
        assert got.endswith(b"\r\nOK\r\n")
        assert b"AT\r" not in got  # fw31-alt starts with echo off
    finally:
        client.close()
    client = TcpClient(("127.0.0.1", int(m.group(1))))
    try:
        assert command(client, b"ATI") == b"\r\nST87M01\r\n\r\nOK\r\n"
    finally:
        client.close()


def test_bad_command_lines_are_refused(sims):
    for args in (
        ["--pty", "--route", "192.168.21.4:4433=192.168.21.5:4433"],
        ["--tcp", "0.0.0.0:0"],
        ["--pty", "--profile", "no-such-profile"],
    ):
        proc = subprocess.run([SIM, *args], capture_output=True, timeout=10)
        assert proc.returncode == 2, (args, proc)
        assert b"loopback" in proc.stderr or b"profile" in proc.stderr
