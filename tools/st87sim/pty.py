# Serving a Module to another process: over a pseudo-terminal (what the MicroPython unix port
# opens as its UART) or over one TCP connection at a time.

import logging
import os
import select
import socket
import threading
import tty

from . import net

log = logging.getLogger("st87sim.serve")

_CHUNK = 4096
_POLL_S = 0.2


class _Server:
    def __init__(self, module):
        self.module = module
        self._stop = threading.Event()
        self._threads = []

    def _spawn(self, target, name):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)


class PtyServer(_Server):
    def __init__(self, module):
        super().__init__(module)
        self.master, self._slave = os.openpty()
        # Raw on both ends: no echo, no CR/LF translation, no line buffering. We keep our own
        # slave descriptor open for the server's lifetime, so the settings stay and the
        # master never sees EIO while the client has the slave closed; what is written
        # before a client opens it waits in the tty (a client may flush it away, which is
        # fine: boot URCs may be lost, the driver syncs with AT).
        tty.setraw(self.master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._spawn(self._pump_in, "st87sim-pty-in")
        self._spawn(self._pump_out, "st87sim-pty-out")

    def _pump_in(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], _POLL_S)
            if not ready:
                continue
            try:
                data = os.read(self.master, _CHUNK)
            except OSError as exc:
                log.debug("pty read: %s", exc)
                self._stop.wait(_POLL_S)
                continue
            if data:
                self.module.host_write(data)

    def _pump_out(self):
        while not self._stop.is_set():
            data = memoryview(self.module.host_read(_CHUNK, _POLL_S))
            while data and not self._stop.is_set():
                _, ready, _ = select.select([], [self.master], [], _POLL_S)
                if ready:
                    data = data[os.write(self.master, data) :]

    def stop(self):
        super().stop()
        os.close(self.master)
        os.close(self._slave)


class TcpServer(_Server):
    def __init__(self, module, host, port):
        super().__init__(module)
        if not net.is_loopback(host):
            raise ValueError(f"--tcp listens on loopback addresses only, not {host}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(1)
        self._listener.settimeout(_POLL_S)
        self.address = self._listener.getsockname()[:2]
        self._client = None
        self._spawn(self._accept_loop, "st87sim-tcp-accept")
        self._spawn(self._pump_out, "st87sim-tcp-out")

    # One client at a time; the next one is served when it leaves.
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, peer = self._listener.accept()
            except TimeoutError:
                continue
            log.info("client %s:%d connected", *peer[:2])
            client.settimeout(_POLL_S)
            self._client = client
            while not self._stop.is_set():
                try:
                    data = client.recv(_CHUNK)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.module.host_write(data)
            self._client = None
            client.close()
            log.info("client left")

    # With no client connected the module's output is lost, as on an unplugged UART.
    def _pump_out(self):
        while not self._stop.is_set():
            data = self.module.host_read(_CHUNK, _POLL_S)
            client = self._client
            if data and client is not None:
                try:
                    client.sendall(data)
                except OSError as exc:
                    log.debug("tcp send: %s", exc)

    def stop(self):
        super().stop()
        self._listener.close()
