# st87: a machine.UART-like port over a serial device or pty, for the MicroPython unix port.
# MIT license; Copyright (c) 2026 st87 developers

# On the unix port there is no machine.UART. This class opens a tty (a USB-serial adapter
# wired to the module, or the pty that st87-sim prints) and offers the subset of the UART
# contract the driver uses: write(buf), readinto(buf[, nbytes]) returning None when nothing
# arrived within `timeout` ms, read([n]) and any().

import select
import termios

from micropython import const

_VTIME = const(5)  # indexes into termios' c_cc on Linux
_VMIN = const(6)

_BAUDS = {
    9600: termios.B9600,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
    460800: termios.B460800,
    921600: termios.B921600,
}


class UART:
    def __init__(self, path, baudrate=115200, timeout=20):
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)

        # VMIN=0, VTIME=0: a read returns at once with what has arrived (maybe nothing), so
        # readinto never waits for a full buffer; poll() does the waiting.
        attr = termios.tcgetattr(fd)
        attr[6][_VMIN] = 0
        attr[6][_VTIME] = 0
        if baudrate in _BAUDS:
            attr[4] = attr[5] = _BAUDS[baudrate]
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.timeout = timeout

    def write(self, buf):
        # NOTE: no flush(): the file is unbuffered enough, and flush() fails on a pty.
        return self._f.write(buf)

    def readinto(self, buf, nbytes=None):
        if not self._poll.poll(self.timeout):
            return None
        if nbytes is not None:
            buf = memoryview(buf)[:nbytes]
        n = self._f.readinto(buf)
        return n or None

    def read(self, n=256):
        buf = bytearray(n)
        k = self.readinto(buf)
        return bytes(buf[:k]) if k else None

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def close(self):
        self._f.close()
