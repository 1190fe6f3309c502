# st87: the Modem: start-up, readiness, identity, network attach.
# MIT license; Copyright (c) 2026 st87 developers

try:
    from micropython import const
except ImportError:  # CPython
    from .at import const

import gc

from . import at
from .at import Channel, field_int, sleep_ms, ticks_add, ticks_diff, ticks_ms
from .errors import ATError, ATTimeout, ModemError, ModemRebooted
from .sockets import FRAME_MAX, TCP, Socket

# Modem states.
OFF = const(0)
BOOTING = const(1)
READY = const(2)
PROVISIONING = const(3)
ASLEEP = const(4)

_CID = const(5)  # the PDP context the module activates by itself (PROTOCOL.md section 2)
_CME_BOOTING = const(1120)  # application core still starting
_CME_CFUN_SAME = const(98)  # AT+CFUN=1 while already 1: also drops the IP stack

_RETRY_MS = const(100)
_ATTACH_POLL_MS = const(500)
_CFUN_MS = const(15000)


class Modem:
    # uart:      a machine.UART (or st87.unix.UART) already set to the module's baud rate.
    # reset_pin: an optional machine.Pin wired to the module's reset (active low).
    # wake_pin:  an optional machine.Pin wired to WAKE_UP (pulsed high before commands).
    # trace:     an optional function(direction, bytes) that sees every line; credentials
    #            in it are redacted.
    # rxbuf:     size of the receive buffer: the longest line the module may send (the hex
    #            lines of certificates and CSRs are the longest).
    # line_cap:  the firmware's command line cap; longer commands are refused before sending.
    # sec_ids:   (first, last) security profile ids the firmware accepts.
    # idle_probe_ms: after this long without a command, probe before the next one, because a
    #            module that went to sleep loses the first command (None: sleep is off).
    # frame_buf: make the sockets' frame-sized receive buffer now (see _frame_buffer). False
    #            makes it only when a TCP frame larger than the caller's buffer first comes:
    #            1.5 KB saved where replies are short, or for a modem that only provisions.
    def __init__(
        self,
        uart,
        *,
        reset_pin=None,
        wake_pin=None,
        trace=None,
        rxbuf=1024,
        line_cap=1600,
        sec_ids=(0, 15),
        idle_probe_ms=5000,
        frame_buf=True,
    ):
        # Long-lived buffers (the receive buffer here, the frame buffer below) go into a heap
        # just collected, so they take the holes garbage leaves rather than split the free end.
        gc.collect()
        self.channel = Channel(uart, trace, rxbuf)
        self.channel.idle_probe_ms = idle_probe_ms
        self._reset_pin = reset_pin
        self._wake_pin = wake_pin
        self.line_cap = line_cap
        self.sec_ids = sec_ids
        self.state = OFF
        self.cfun = -1  # last known AT+CFUN level, -1 unknown
        self.registered = False
        self.ip_up = False
        self.boots = 0  # boot URCs seen
        self._sockets = {}  # module socket id -> Socket, for URC routing
        self._tls = None
        self._frame = memoryview(bytearray(FRAME_MAX)) if frame_buf else None

        ch = self.channel
        ch.on(b"#REBOOT", self._on_reboot)
        ch.on(b"#IPCFG:", self._on_ipcfg)
        ch.on(b"+CEREG:", self._on_cereg)
        ch.on(b"#IPRECV:", self._on_socket)
        ch.on(b"#SOCKETCLOSED:", self._on_socket)
        for prefix in (b"#SYSSTART", b"#SIMST:", b"+CSCON:", b"+CGEV:", b"#SLEEP", b"#WAKEUP"):
            ch.on(prefix, _ignore)
        ch.on(b"#ENERGY:", _ignore)

    @property
    def tls(self):
        if self._tls is None:
            # Loaded on first use (a modem that only opens sockets never needs it), into a heap
            # just collected: a module loaded over garbage ends up scattered round its holes.
            gc.collect()
            from .tls import TLS

            self._tls = TLS(self)
        return self._tls

    # --- URC handlers (they run inside whatever command is waiting) ------------------------

    def _on_reboot(self, buf, s, e):
        self.state = BOOTING
        self.boots += 1
        self.registered = False
        self.ip_up = False
        self.cfun = -1
        for sock in self._sockets.values():
            sock._gone()
        self._sockets.clear()

    # "#IPCFG: 5,0,1": context 5 has its IP stack up.
    def _on_ipcfg(self, buf, s, e):
        if field_int(buf, s, e, 0) == _CID:
            self.ip_up = field_int(buf, s, e, 2) == 1

    # URC form "+CEREG: <stat>[,...]" (the read form, with <n> first, is a command reply).
    def _on_cereg(self, buf, s, e):
        stat = field_int(buf, s, e, 0)
        self.registered = stat == 1 or stat == 5

    # "#IPRECV: 5,<sock>[,<len>]" and "#SOCKETCLOSED: 5,<sock>".
    def _on_socket(self, buf, s, e):
        sock = self._sockets.get(field_int(buf, s, e, 1))
        if sock is not None:
            if buf[s + 1] == 73:  # 'I'
                sock._pending += 1
            else:
                sock._peer_closed()

    # --- commands --------------------------------------------------------------------------

    # Send one raw command (str or bytes, without CR) and return its information lines.
    def command(self, cmd, timeout_ms=5000):
        if isinstance(cmd, str):
            cmd = cmd.encode()
        return self.channel.command(cmd, timeout_ms)

    # Process URCs for up to timeout_ms (socket data, network changes); sends nothing.
    def poll(self, timeout_ms=0):
        self.channel.poll(timeout_ms)

    def _deadline(self, timeout_ms):
        return ticks_add(ticks_ms(), timeout_ms)

    def _left(self, deadline):
        left = ticks_diff(deadline, ticks_ms())
        if left <= 0:
            raise ATTimeout("module not ready in time")
        return left

    # Pulse the wake pin (if wired) so a sleeping module takes the next command.
    def wake(self):
        if self._wake_pin is not None:
            self._wake_pin.value(1)
            sleep_ms(10)
            self._wake_pin.value(0)
        if self.state == ASLEEP:
            self.state = READY

    # Sync with the module and bring it to READY: sync, ATE0, AT+CMEE=1, wait until the
    # application core answers. Works after power-up, after a reset, with echo on, through boot
    # noise and "+CME ERROR: 1120", and with a sleeping module whose first command is lost.
    def start(self, timeout_ms=30000):
        deadline = self._deadline(timeout_ms)
        if self._reset_pin is not None:
            self._reset_pin.value(0)
            sleep_ms(100)
            self._reset_pin.value(1)
        self.wake()
        self.state = BOOTING
        ch = self.channel

        # AT+CMEE? answers with a marker line, so a late OK of an earlier probe is never taken
        # for the answer (Channel.resync); during boot it answers 1120 and we ask again.
        while True:
            try:
                ch.resync(1)
                break
            except ATTimeout:
                self._left(deadline)
                sleep_ms(_RETRY_MS)

        self._booting(b"ATE0", deadline)
        self._booting(b"AT+CMEE=1", deadline)
        self.cfun = self._cfun(deadline)
        self._close_stale()
        self.state = READY

    # A reset of the host alone leaves the module's sockets open, and creating one may then
    # fail with +CME ERROR: 2159. At start this host owns no socket, so every one listed is
    # stale.
    #   AT#SOCKETCREATE? -> "#SOCKETCREATE: <sock>,<cid>,<TCP|UDP>,<state>" per socket
    def _close_stale(self):
        try:
            lines = self.channel.command(b"AT#SOCKETCREATE?")
        except ATError:
            return  # a firmware without the read form
        for line in lines:
            sid = field_int(line, 0, len(line), 0)
            cid = field_int(line, 0, len(line), 1)
            if sid >= 0 and sid not in self._sockets:
                cmd = b"AT#SOCKETCLOSE=" + str(cid if cid >= 0 else _CID).encode()
                try:
                    self.channel.command(cmd + b"," + str(sid).encode())
                except ATError:
                    pass

    # A command that may still meet "+CME ERROR: 1120" (or a plain ERROR from a firmware with
    # CMEE off) while the application core boots: retried until the deadline.
    def _booting(self, cmd, deadline):
        while True:
            try:
                return self.channel.command(cmd, min(self._left(deadline), 2000))
            except ATError as e:
                if e.code not in (_CME_BOOTING, None):
                    raise
            except (ATTimeout, ModemRebooted):
                pass
            sleep_ms(_RETRY_MS)

    def _cfun(self, deadline):
        for line in self._booting(b"AT+CFUN?", deadline):
            if line.startswith(b"+CFUN:"):
                return field_int(line, 0, len(line), 0)
        return -1

    # Set the functionality level (1 full, 4 radio off, 0 minimum), querying first: on the
    # ST87, AT+CFUN=1 while already at 1 fails and drops the IP stack.
    def set_cfun(self, level, timeout_ms=_CFUN_MS):
        if self.cfun < 0:
            self.cfun = self._cfun(self._deadline(timeout_ms))
        if self.cfun == level:
            return
        self.channel.command(b"AT+CFUN=" + str(level).encode(), timeout_ms)
        self.cfun = level
        if level != 1:
            self.registered = False
            self.ip_up = False

    # Wait until the module is registered (home or roaming) and context 5 has its IP stack up.
    # Turns the radio on first if provisioning left it off.
    def attach(self, timeout_ms=120000):
        deadline = self._deadline(timeout_ms)
        self._ready()
        self.set_cfun(1, min(self._left(deadline), _CFUN_MS))
        self.channel.command(b"AT+CEREG=2")
        while True:
            # Read form: "+CEREG: <n>,<stat>[,...]".
            for line in self.channel.command(b"AT+CEREG?"):
                stat = field_int(line, 0, len(line), 1)
                self.registered = stat == 1 or stat == 5
            if self.registered:
                self.ip_up = False
                for line in self.channel.command(b"AT#IPCFG?"):
                    self._on_ipcfg(line, 0, len(line))
                    if self.ip_up:
                        return
            self.poll(min(self._left(deadline), _ATTACH_POLL_MS))

    # The module's IP address on context 5, as a str.
    def ip_address(self):
        for line in self.channel.command(b"AT+CGPADDR=5"):
            return at.field(line, 1).decode()
        raise ModemError("no IP address")

    # Identity: manufacturer model (ATI), firmware (AT+CGMR), IMEI (AT+CGSN).
    def identity(self):
        out = []
        for cmd in (b"ATI", b"AT+CGMR", b"AT+CGSN"):
            lines = self.channel.command(cmd)
            out.append(lines[0].decode() if lines else "")
        return tuple(out)

    def _ready(self):
        if self.state == OFF or self.state == BOOTING:
            raise ModemError("modem not started: call start()")

    # The buffer a socket keeps the rest of a received frame in, at least n bytes. The modem
    # makes one at start-up, while the heap is still in one piece: late in a long run, the
    # first read may find no free block of 1.5 KB (the largest allocation of a session), and
    # on a board the heap never defragments. It is lent to one socket at a time (given back
    # by Socket.close); a socket that finds it lent makes its own.
    def _frame_buffer(self, n):
        buf = self._frame
        if buf is not None and len(buf) >= n:
            self._frame = None
            return buf
        return memoryview(bytearray(n))

    def _frame_buffer_back(self, buf):
        if self._frame is None or len(buf) > len(self._frame):
            self._frame = buf

    # A secure or plain socket on context 5. See sockets.Socket for the options.
    def socket(self, proto=None, sec_id=None, **options):
        self._ready()
        return Socket(self, TCP if proto is None else proto, sec_id, **options)


def _ignore(buf, s, e):
    pass
