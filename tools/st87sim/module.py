# The emulated ST87MXX: AT interpreter, start-up and network state machines and sockets, as
# PROTOCOL.md models them. The TLS credential commands are in creds.py, mixed into Module.
#
# Threads: one worker runs everything that touches the module's state, in order: host bytes
# (parsed here), timers (boot, attach, sleep) and events posted by the socket reader threads.
# The host side only appends bytes to the inbox and takes bytes from the outbox, both guarded
# by their own Condition, so readers block instead of polling.

import collections
import functools
import heapq
import itertools
import logging
import threading
import time

from . import dtls, engine, its, net, sessions
from .atcmd import BARE as _BARE
from .atcmd import CmeError as _CmeError
from .atcmd import PlainError as _PlainError
from .atcmd import hex_payload, ints, send_payload, split_args
from .creds import CredentialCommands, redact
from .handshake import Handshake
from .profile import FirmwareProfile
from .sockstate import (
    CID,
    MAX_PAYLOAD,
    MAX_SOCKETS,
    SOCK_CLOSED,
    SOCK_CONNECTED,
    SOCK_CREATED,
    STATE_NAMES,
    RawSend,
    Socket,
    SocketInfo,
)
from .udp import DatagramCommands

log = logging.getLogger("st87sim")
at_log = logging.getLogger("st87sim.at")

MODULE_IP = "10.10.0.2"

_KEPT_HANDSHAKES = 1000

# Module states.
BOOTING = "booting"
READY = "ready"
ASLEEP = "asleep"

# Text for AT+CMEE=2 on profiles that have it (PROTOCOL.md section 6).
_CME_TEXT = {
    3: "operation not allowed",
    20: "memory full",
    98: "IP stack dropped",
    1120: "application core booting",
    1301: "element already exists",
    1302: "element does not exist",
    1303: "key and certificate do not match",
    2104: "invalid socket id",
    2106: "network down",
    2112: "no DNS server",
    2152: "TCP connect error",
    2154: "socket error",
    2159: "no free socket",
    2171: "DNS name not found",
}


class _Timer:
    __slots__ = ("due", "seq", "fn", "cancelled")

    def __init__(self, due, seq, fn):
        self.due, self.seq, self.fn, self.cancelled = due, seq, fn, False

    def __lt__(self, other):
        return (self.due, self.seq) < (other.due, other.seq)

    def cancel(self):
        self.cancelled = True


class Module(CredentialCommands, DatagramCommands):
    # profile: FirmwareProfile, a profile name, or a JSON file path (default: "default").
    # state_path: JSON file of the committed ITS (None: kept in memory only).
    # routes: {"A:P": ("127.0.0.1", Q)}; dns: {"name": "127.0.0.1"}.
    # chunk: deliver at most this many bytes per read (0: no limit).
    # late_reply_ms: delay every command's reply. boot_noise: bytes before each boot URC.
    # loss: the fraction of datagrams lost between the module and its UDP peers, each way
    # (also the `loss` attribute); loss_seed makes the losses repeat from run to run.
    # dtls_timeout_ms: the DTLS handshake retransmission timer, (first, longest).
    def __init__(
        self,
        profile=None,
        *,
        state_path=None,
        routes=None,
        dns=None,
        chunk=0,
        late_reply_ms=0,
        boot_noise=b"",
        loss=0.0,
        loss_seed=None,
        dtls_timeout_ms=dtls.HANDSHAKE_TIMEOUT_MS,
    ):
        if profile is None:
            profile = FirmwareProfile()
        elif isinstance(profile, str):
            profile = FirmwareProfile.load(profile)
        self.profile = profile
        self.net = net.NetPolicy(routes, dns)
        self.store = its.CredentialStore(state_path, profile.its_files)
        self.chunk = chunk
        self.late_reply_ms = late_reply_ms
        self.boot_noise = boot_noise
        self._loss = dtls.Loss(loss, loss_seed)
        self.dtls_timeout_ms = dtls_timeout_ms
        # Every TLS/DTLS handshake attempt that reached the network (handshake.Handshake).
        self.handshakes = []
        # TLS/DTLS 1.2 sessions for resumption, kept across reboots like the ITS (sessions.py).
        self.sessions = sessions.SessionCache()

        self._cv = threading.Condition()
        self._inbox = bytearray()
        self._posted = collections.deque()
        self._timers = []
        self._seq = itertools.count()
        self._closing = False
        self._drop = 0

        self._out_cv = threading.Condition()
        self._out = bytearray()

        self._sock_lock = threading.Lock()
        self._sockets = {}
        self._handlers = self._command_table()

        # Power-up: the worker does not run yet, so this is safe from here.
        self._boot(b"#REBOOT_RESET")
        self._thread = threading.Thread(target=self._run, name="st87sim", daemon=True)
        self._thread.start()

    # --- host side (any thread) ---

    def host_write(self, data):
        with self._cv:
            self._inbox += data
            self._cv.notify()

    # Up to max_n bytes the module has sent, waiting up to timeout_s (None: forever) for
    # the first one; b"" when nothing came.
    def host_read(self, max_n, timeout_s):
        with self._out_cv:
            if not self._out and timeout_s != 0:
                self._out_cv.wait_for(lambda: self._out or self._closing, timeout_s)
            n = min(max_n, len(self._out))
            if self.chunk:
                n = min(n, self.chunk)
            data = bytes(self._out[:n])
            del self._out[:n]
            return data

    def host_pending(self):
        with self._out_cv:
            return len(self._out)

    # Fault injection: raw bytes to the host, at once, between whatever else is going out.
    def inject(self, raw):
        self._emit(bytes(raw))

    # Fault injection: the next n commands run but their replies are lost.
    def drop_replies(self, n=1):
        with self._cv:
            self._drop += n

    # Power loss and power-up: sockets gone, uncommitted credentials gone, #REBOOT_RESET.
    def power_cycle(self):
        self._call(lambda: self._boot(b"#REBOOT_RESET"))

    @property
    def loss(self):
        return self._loss.rate

    @loss.setter
    def loss(self, rate):
        self._loss.rate = rate

    @property
    def state(self):
        return self._state

    @property
    def cfun(self):
        return self._cfun

    def open_sockets(self):
        with self._sock_lock:
            socks = self._sockets_by_id()
            return [
                SocketInfo(
                    s.id,
                    CID,
                    s.proto,
                    STATE_NAMES[s.state],
                    s.sec_id,
                    s.local_port,
                    s.remote,
                    len(s.frames),
                )
                for s in socks
            ]

    def close(self):
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._cv.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._drop_sockets(urc=False)
        with self._out_cv:
            self._out_cv.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- worker loop ---

    def _run(self):
        while True:
            with self._cv:
                while not self._closing:
                    if self._inbox or self._posted:
                        break
                    if self._timers and self._timers[0].due <= time.monotonic():
                        break
                    wait = self._timers[0].due - time.monotonic() if self._timers else None
                    self._cv.wait(wait)
                if self._closing:
                    return
                data = bytes(self._inbox)
                self._inbox.clear()
                posted = list(self._posted)
                self._posted.clear()
                now = time.monotonic()
                due = []
                while self._timers and self._timers[0].due <= now:
                    due.append(heapq.heappop(self._timers))
            for job in [t.fn for t in due if not t.cancelled] + posted:
                self._guarded(job)
            if data:
                self._guarded(functools.partial(self._feed, data))

    def _guarded(self, job):
        try:
            job()
        except Exception:
            log.exception("st87-sim internal error")

    # From any thread: run fn on the worker.
    def _post(self, fn):
        with self._cv:
            self._posted.append(fn)
            self._cv.notify()

    # From a host thread: run fn on the worker and wait for it.
    def _call(self, fn):
        done = threading.Event()

        def job():
            try:
                fn()
            finally:
                done.set()

        self._post(job)
        done.wait(timeout=10)

    # Worker only (or before it starts).
    def _after(self, ms, fn):
        timer = _Timer(time.monotonic() + ms / 1000, next(self._seq), fn)
        with self._cv:
            heapq.heappush(self._timers, timer)
            self._cv.notify()
        return timer

    # --- output ---

    def _emit(self, data):
        with self._out_cv:
            self._out += data
            self._out_cv.notify_all()

    def _urc(self, *lines):
        for line in lines:
            at_log.debug("< %s", line)
        self._emit(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    # Reply pieces of the command being run: (bytes, what the log shows).
    def _info(self, line):
        self._reply.append((b"\r\n" + line.encode("latin-1") + b"\r\n", line))

    def _ok(self):
        self._info("OK")

    def _error_line(self, code):
        if self._cmee == 0:
            return "ERROR"
        if code is _BARE:
            return "+CME ERROR"
        if self._cmee == 2 and self.profile.cmee_text and code in _CME_TEXT:
            return f"+CME ERROR: {_CME_TEXT[code]}"
        return f"+CME ERROR: {code}"

    def _flush_reply(self, swallow):
        reply, self._reply = self._reply, []
        if not reply:
            return
        if swallow:
            at_log.debug("(reply dropped: %s)", " | ".join(text for _, text in reply))
            return
        if self.late_reply_ms:
            time.sleep(self.late_reply_ms / 1000)
        for _, text in reply:
            at_log.debug("< %s", text)
        self._emit(b"".join(data for data, _ in reply))

    # --- start-up, radio, sleep ---

    def _boot(self, urc):
        with self._cv:
            self._timers.clear()
        self._drop_sockets(urc=False)
        self.store.reload()
        self._state = BOOTING
        self._echo = self.profile.echo_on_boot
        self._cmee = 1
        self._cfun = 1
        self._cereg_n = 1
        self._cscon_n = 0
        self._reg = 0  # +CEREG stat
        self._ip_up = False
        self._cscon = 0
        self._attach_timer = None
        self._sleep_timer = None
        self._settings = {}
        self._reply = []
        self._then = []
        self._swallow = False
        self._line = bytearray()
        self._overflow = False
        self._after_cr = False
        self._raw = None
        self._last_activity = time.monotonic()
        log.info("boot (%s), profile %s", urc.decode(), self.profile.name)
        self._emit(self.boot_noise)
        self._urc(urc.decode())
        self._after(self.profile.boot_ms, self._boot_done)

    def _boot_done(self):
        self._state = READY
        self._urc("#SYSSTART", "#SIMST: 1")
        self._start_attach()
        self._arm_sleep(self.profile.sleep_hold_s)

    def _start_attach(self):
        self._reg = 2
        self._attach_timer = self._after(self.profile.attach_ms, self._attached)

    def _attached(self):
        self._attach_timer = None
        self._reg = 1
        self._ip_up = True
        self._cscon = 1
        # NOTE: the URC form of +CEREG has no <n>, unlike the AT+CEREG? answer.
        self._urc("+CEREG: 2", "+CSCON: 1", f"+CGEV: ME PDN ACT {CID}", f"#IPCFG: {CID},0,1")
        self._urc("+CEREG: 1")
        log.info("attached, context %d up (%s)", CID, MODULE_IP)

    # CFUN 0/4, or the IP stack dropped by AT+CFUN=1 at 1: sockets are closed and freed.
    def _ip_down(self, radio_off):
        if self._attach_timer:
            self._attach_timer.cancel()
            self._attach_timer = None
        was_up = self._ip_up
        self._ip_up = False
        self._drop_sockets(urc=True)
        if radio_off:
            self._reg = 0
            self._cscon = 0
            self._urc("+CEREG: 0")
        if was_up:
            self._urc(f"#IPCFG: {CID},0,0")

    def _touch(self):
        self._last_activity = time.monotonic()

    # One sleep timer at a time; it re-arms itself until the line has been idle long enough.
    def _arm_sleep(self, delay_s):
        if not self.profile.sleep_enabled:
            return
        if self._sleep_timer is not None:
            self._sleep_timer.cancel()
        self._sleep_timer = self._after(delay_s * 1000, self._sleep_check)

    def _sleep_check(self):
        self._sleep_timer = None
        hold = self.profile.sleep_hold_s
        idle = time.monotonic() - self._last_activity
        if self._state != READY or self._raw is not None:
            self._arm_sleep(hold)
            return
        if idle < hold:
            self._arm_sleep(hold - idle)
            return
        self._state = ASLEEP
        log.info("asleep after %.1f s without traffic", idle)
        # NOTE: these two come with a single CRLF between them, unlike every other URC pair.
        at_log.debug("< #ENERGY / #SLEEP")
        self._emit(b"\r\n#ENERGY: 42\r\n#SLEEP \r\n")

    def _wake(self, why):
        log.info("woken by %s", why)
        self._state = READY
        self._touch()
        self._arm_sleep(self.profile.sleep_hold_s)

    # --- host byte parser ---

    def _feed(self, data):
        self._touch()
        i = 0
        n = len(data)
        while i < n:
            if self._raw is not None:
                raw = self._raw
                take = min(n - i, raw.need - len(raw.buf))
                raw.buf += data[i : i + take]
                i += take
                if len(raw.buf) == raw.need:
                    self._finish_raw()
                continue
            byte = data[i]
            if byte in (0x0D, 0x0A):
                i += 1
                if byte == 0x0A and self._after_cr:
                    self._after_cr = False
                    continue
                self._after_cr = byte == 0x0D
                self._end_line(data[i - 1 : i])
                continue
            self._after_cr = False
            j = i
            while j < n and data[j] not in (0x0D, 0x0A):
                j += 1
            self._take_text(data[i:j])
            i = j

    def _take_text(self, text):
        if self._echo and self._state != ASLEEP:
            self._emit(text)
        if self._overflow:
            return
        if len(self._line) + len(text) > self.profile.line_cap:
            # Keep no more than the cap; the line is ignored when it ends.
            self._overflow = True
            self._line.clear()
        else:
            self._line += text

    def _end_line(self, terminator):
        line = bytes(self._line)
        overflow = self._overflow
        self._line.clear()
        self._overflow = False
        if self._state == ASLEEP:
            # NOTE: the first command sent to a sleeping module only wakes it.
            self._wake(f"a command that is lost: {redact(line.decode('latin-1'))!r}")
            return
        if self._echo:
            self._emit(terminator)
        if overflow:
            log.warning("command line longer than %d characters ignored", self.profile.line_cap)
            return
        if not line.strip():
            return
        self._command(line.decode("latin-1").strip())

    def _command(self, text):
        at_log.debug("> %s", redact(text))
        with self._cv:
            swallow = self._drop > 0
            if swallow:
                self._drop -= 1
        self._reply = []
        self._then = []
        self._swallow = swallow
        try:
            self._dispatch(text)
        except _CmeError as exc:
            self._info(self._error_line(exc.code))
        except _PlainError:
            self._info("ERROR")
        except Exception:
            log.exception("error running %r", redact(text))
            self._info("ERROR")
        self._flush_reply(swallow)
        then, self._then = self._then, []
        for fn in then:
            fn()

    def _dispatch(self, text):
        if self._state == BOOTING:
            raise _CmeError(1120)
        if text[:2].upper() != "AT":
            raise _PlainError()
        body = text[2:]
        if not body:
            self._ok()
            return
        if body[0] not in "+#":
            self._basic(body.upper())
            return
        cut = len(body)
        for mark in "=?":
            pos = body.find(mark)
            if pos != -1:
                cut = min(cut, pos)
        name = body[:cut].upper()
        rest = body[cut:]
        if rest.startswith("=?"):
            op, args = "test", ""
        elif rest.startswith("="):
            op, args = "set", rest[1:]
        elif rest == "?":
            op, args = "read", ""
        elif rest == "":
            op, args = "exec", ""
        else:
            raise _PlainError()
        handler = self._handlers.get(name)
        if handler is None:
            raise _PlainError()
        handler(op, args)

    # ATE0, ATE1, ATI...
    def _basic(self, cmd):
        if cmd in ("E", "E0", "E1"):
            self._echo = cmd == "E1"
        elif cmd in ("I", "I0"):
            self._info("ST87M01")
        else:
            raise _PlainError()
        self._ok()

    def _command_table(self):
        return {
            "+CMEE": self._h_cmee,
            "+CGMI": self._fixed("STMicroelectronics"),
            "+CGMM": self._fixed("ST87M01"),
            "+CGMR": self._fixed(self.profile.version),
            "+CGSN": self._fixed("867723050012345"),
            "+CIMI": self._fixed("001010123456789"),
            "+ICCID": self._fixed("+ICCID: 89882280666012345678"),
            "+IPR": self._h_ipr,
            "+CFUN": self._h_cfun,
            "+CEREG": self._h_cereg,
            "+CSCON": self._h_cscon,
            "+CESQ": self._h_cesq,
            "+CGPADDR": self._h_cgpaddr,
            "+CPSMS": self._setting("+CPSMS", "0"),
            "+CEDRXS": self._setting("+CEDRXS", "0"),
            "#SLEEPMODE": self._setting("#SLEEPMODE", "0"),
            "#IPCFG": self._h_ipcfg,
            "#DNS": self._h_dns,
            "#RESET": self._h_reset,
            "#TLSKEYADD": self._h_tlskeyadd,
            "#TLSCERTADD": self._h_tlscertadd,
            "#TLSKEYLIST": self._h_tlskeylist,
            "#TLSCERTLIST": self._h_tlscertlist,
            "#TLSKEYDEL": self._h_tlskeydel,
            "#TLSCERTDEL": self._h_tlscertdel,
            "#TLSCERTSIGN": self._h_tlscertsign,
            "#SOCKETCREATE": self._h_socketcreate,
            "#TCPCONNECT": self._h_tcpconnect,
            "#IPSENDTCP": self._h_ipsendtcp,
            "#DTLSCONNECT": self._h_dtlsconnect,
            "#IPSENDUDP": self._h_ipsendudp,
            "#IPREAD": self._h_ipread,
            "#SOCKETCLOSE": self._h_socketclose,
            # TODO: AT#IPPARAMS (DNS server setting). Until then it answers ERROR, as unknown
            # commands do.
        }

    # --- parameter helpers ---

    _ints = staticmethod(ints)
    _hex_payload = staticmethod(hex_payload)

    def _fixed(self, line):
        def handler(op, args):
            if op == "test":
                self._ok()
                return
            self._info(line)
            self._ok()

        return handler

    # Power-saving settings: accepted and read back, with no effect on the model.
    # TODO: tie AT#SLEEPMODE/AT+CPSMS to the sleep model instead of the profile knob.
    def _setting(self, name, default):
        def handler(op, args):
            if op == "set":
                self._settings[name] = args
            elif op == "read":
                self._info(f"{name}: {self._settings.get(name, default)}")
            self._ok()

        return handler

    # --- general commands ---

    def _h_cmee(self, op, args):
        if op == "read":
            self._info(f"+CMEE: {self._cmee}")
        elif op == "test":
            self._info("+CMEE: (0-2)")
        elif op == "set":
            (n,) = self._ints(split_args(args)[:1])
            if n not in (0, 1, 2):
                raise _CmeError(3)
            self._cmee = n
        else:
            raise _PlainError()
        self._ok()

    def _h_ipr(self, op, args):
        if op == "read":
            self._info(f"+IPR: {self._settings.get('+IPR', 115200)}")
        elif op == "set":
            (baud,) = self._ints(split_args(args)[:1])
            # NOTE: the emulated UART has no baud rate; the value is only kept.
            self._settings["+IPR"] = baud
        self._ok()

    def _h_cfun(self, op, args):
        if op == "read":
            self._info(f"+CFUN: {self._cfun}")
        elif op == "test":
            self._info("+CFUN: (0,1,4)")
        elif op == "set":
            (fun,) = self._ints(split_args(args)[:1])
            if fun not in (0, 1, 4):
                raise _CmeError(3)
            if fun == 1 and self._cfun == 1:
                # NOTE: AT+CFUN=1 at 1 is an error *and* drops the IP stack, which then
                # comes back by itself.
                self._then.append(self._restart_ip)
                raise _CmeError(98)
            old, self._cfun = self._cfun, fun
            if fun == 1:
                self._then.append(self._start_attach)
            elif old == 1:
                self._then.append(lambda: self._ip_down(radio_off=True))
        else:
            raise _PlainError()
        self._ok()

    def _restart_ip(self):
        log.info("AT+CFUN=1 at CFUN 1: IP stack dropped")
        self._ip_down(radio_off=False)
        self._start_attach()

    def _h_cereg(self, op, args):
        if op == "read":
            self._info(f"+CEREG: {self._cereg_n},{self._reg}")
        elif op == "test":
            self._info("+CEREG: (0-5)")
        elif op == "set":
            (n,) = self._ints(split_args(args)[:1])
            if not 0 <= n <= 5:
                raise _CmeError(3)
            # NOTE: the model keeps emitting +CEREG URCs whatever <n> is; drivers set it
            # and must not depend on the URC's extra fields.
            self._cereg_n = n
        self._ok()

    def _h_cscon(self, op, args):
        if op == "read":
            self._info(f"+CSCON: {self._cscon_n},{self._cscon}")
        elif op == "set":
            (n,) = self._ints(split_args(args)[:1])
            if n not in (0, 1):
                raise _CmeError(3)
            self._cscon_n = n
        self._ok()

    def _h_cesq(self, op, args):
        if op == "exec":
            # rsrq 30, rsrp 60 (-80 dBm) when registered; unknown when the radio is off.
            self._info(
                "+CESQ: 99,99,255,255,30,60" if self._reg else "+CESQ: 99,99,255,255,255,255"
            )
        self._ok()

    def _h_cgpaddr(self, op, args):
        if op == "set":
            cids = self._ints(split_args(args))
            if cids != [CID]:
                raise _CmeError(3)
        if op in ("set", "exec"):
            self._info(f'+CGPADDR: {CID},"{MODULE_IP}"' if self._ip_up else f"+CGPADDR: {CID}")
        self._ok()

    def _h_ipcfg(self, op, args):
        if op == "read":
            self._info(f"#IPCFG: {CID},0,{int(self._ip_up)}")
        # TODO: AT#IPCFG=<cid>,<mode> (automatic/manual IP) is accepted and ignored.
        self._ok()

    def _h_dns(self, op, args):
        if op != "set":
            raise _PlainError()
        fields = split_args(args)
        if len(fields) != 3:
            raise _CmeError(3)
        cid, _ = self._ints(fields[:2])
        if cid != CID or not self._ip_up:
            raise _CmeError(2106)
        if not self.net.has_dns():
            raise _CmeError(2112)
        ip = self.net.lookup(fields[2])
        if ip is None:
            raise _CmeError(2171)
        self._info(f"#DNS: {ip},300")
        self._ok()

    def _h_reset(self, op, args):
        if op == "test":
            self._info("#RESET: (0,1)")
            self._ok()
            return
        save = 0
        if op == "set":
            (save,) = self._ints(split_args(args)[:1])
            if save not in (0, 1):
                raise _CmeError(3)
        elif op != "exec":
            raise _PlainError()
        if save:
            self.store.commit()
        self._ok()
        self._then.append(lambda: self._boot(b"#REBOOT_HOST"))

    # --- sockets (PROTOCOL.md section 5) ---

    # What the engines call for each handshake attempt: a Handshake kept in self.handshakes
    # (the last _KEPT_HANDSHAKES of them, so that a long-running emulator does not grow).
    # Runs on the worker (the handshakes run there).
    def _new_record(self, sec_id, peer, **fields):
        def new_record(protocol):
            record = Handshake(protocol, sec_id, peer, **fields)
            self.handshakes.append(record)
            del self.handshakes[:-_KEPT_HANDSHAKES]
            return record

        return new_record

    def _check_stack(self, cid):
        if cid != CID or not self._ip_up:
            raise _CmeError(2106)

    def _socket(self, sock_id):
        sock = self._sockets.get(sock_id)
        if sock is None:
            raise _CmeError(2104)
        return sock

    # The sockets in id order.
    def _sockets_by_id(self):
        return sorted(self._sockets.values(), key=lambda s: s.id)

    # Where a connect command (`what`, for the log) reaches host:port: (ip, real_port), or
    # ERROR 2152 when the loopback policy refuses it.
    def _connect_target(self, what, host, port):
        try:
            return self.net.target(host, port)
        except net.Refused as exc:
            log.warning("%s %s:%d refused by the loopback policy: %s", what, host, port, exc)
            raise _CmeError(2152) from None

    # The reader-thread callbacks of a connection for `sock`: on_in(item) posts
    # on_item(sock, conn, item) to the worker, on_closed(reason) posts _net_closed. conn is
    # the connection put in box[0] once it is open.
    def _reader_callbacks(self, sock, on_item):
        box = [None]

        def on_in(item):
            self._post(lambda: on_item(sock, box[0], item))

        def on_closed(reason):
            self._post(lambda: self._net_closed(sock, box[0], reason))

        return box, on_in, on_closed

    # AT#SOCKETCREATE=<cid>,<ipver>,<TCP|UDP>,<local_port>,<send_to>,<recv_to>,<urc>[,<sec>]
    def _h_socketcreate(self, op, args):
        if op == "read":
            for s in self._sockets_by_id():
                self._info(f"#SOCKETCREATE: {s.id},{CID},{s.proto},{s.state}")
            self._ok()
            return
        if op != "set":
            raise _PlainError()
        fields = split_args(args)
        if len(fields) not in (7, 8):
            raise _CmeError(3)
        proto = fields[2].upper()
        cid, ipver, local_port, send_to, recv_to, urc = self._ints(fields[:2] + fields[3:7])
        sec_id = self._ints(fields[7:8])[0] if len(fields) == 8 else None
        if (
            proto not in ("TCP", "UDP")
            or ipver not in (0, 1)
            or urc not in (0, 1, 2)
            or not 0 <= local_port <= 65535
            or send_to < 0
            or recv_to < 0
            or (sec_id is not None and sec_id not in self.profile.sec_ids)
        ):
            raise _CmeError(3)
        self._check_stack(cid)
        free = [i for i in range(MAX_SOCKETS) if i not in self._sockets]
        if not free:
            raise _CmeError(2159)
        # NOTE: local_port belongs to the module's own address; no host port is bound, so
        # that the note's 5000 cannot collide with anything on this machine.
        sock = Socket(
            free[0],
            proto,
            local_port=local_port,
            send_to=send_to,
            recv_to=recv_to,
            urc=urc,
            sec_id=sec_id,
        )
        with self._sock_lock:
            self._sockets[sock.id] = sock
        self._info(f"#SOCKETCREATE: {sock.id}")
        self._ok()

    # AT#TCPCONNECT=<cid>,<sock>,<host_or_ip>,<port>
    def _h_tcpconnect(self, op, args):
        if op == "read":
            for s in self._sockets_by_id():
                if s.proto == "TCP":
                    self._info(f"#TCPCONNECT: {CID},{s.id},{int(s.state == SOCK_CONNECTED)}")
            self._ok()
            return
        if op != "set":
            raise _PlainError()
        fields = split_args(args)
        if len(fields) != 4 or not fields[2]:
            raise _CmeError(3)
        cid, sock_id, port = self._ints([fields[0], fields[1], fields[3]])
        host = fields[2]
        if not 1 <= port <= 65535:
            raise _CmeError(3)
        self._check_stack(cid)
        sock = self._socket(sock_id)
        if sock.proto != "TCP" or sock.state != SOCK_CREATED:
            raise _CmeError(3)
        ip, real_port = self._connect_target("TCPCONNECT", host, port)

        creds = self._credentials(sock.sec_id) if sock.sec_id is not None else None
        server_name = None if net.ip_literal(host) else host
        timeout_s = min(sock.send_to or 60, 60)
        session_key = (sock.sec_id, "tcp", ip, real_port)
        session = self.sessions.get(session_key, creds) if creds is not None else None

        conn_box, on_data, on_closed = self._reader_callbacks(sock, self._net_data)
        try:
            conn = net.Connection.open(
                ip,
                real_port,
                creds=creds,
                server_name=server_name,
                timeout_s=timeout_s,
                on_data=on_data,
                on_closed=on_closed,
                session=session,
                new_record=self._new_record(sock.sec_id, (ip, real_port)),
            )
        except (OSError, engine.HandshakeError, net.Refused) as exc:
            what = "TLS handshake" if creds is not None else "TCP connect"
            log.warning("%s to %s:%d (%s:%d) failed: %s", what, host, port, ip, real_port, exc)
            raise _CmeError(2152) from None
        conn_box[0] = conn
        sock.conn = conn
        sock.remote = (ip, real_port)
        sock.state = SOCK_CONNECTED
        if creds is not None:
            self.sessions.put(session_key, creds, getattr(conn.link, "session", None))
        log.info(
            "socket %d connected to %s:%d via %s:%d, %s",
            sock.id,
            host,
            port,
            ip,
            real_port,
            conn.link.describe(),
        )
        self._ok()

    # AT#IPSENDTCP=<cid>,<sock>,<type>,<text|hex|len>
    def _h_ipsendtcp(self, op, args):
        if op != "set":
            raise _PlainError()
        fields = split_args(args, 4)
        if len(fields) != 4:
            raise _CmeError(3)
        cid, sock_id, kind = self._ints(fields[:3])
        data, length = send_payload(kind, fields[3])
        if not 1 <= length <= MAX_PAYLOAD:
            raise _CmeError(3)
        self._check_stack(cid)
        sock = self._socket(sock_id)
        if sock.proto != "TCP":
            raise _CmeError(3)
        if sock.state != SOCK_CONNECTED:
            raise _CmeError(2154)
        if data is not None:
            self._send(sock, data)
            return
        self._expect_raw(sock, length, lambda payload: self._send(sock, payload))

    # Binary send: OK now, then exactly `length` raw bytes, then deliver(bytes) gives the
    # final result.
    # NOTE [model]: if the bytes do not all come within the socket's send timeout, the module
    # gives up with +CME ERROR: 2154 and reads commands again.
    def _expect_raw(self, sock, length, deliver):
        self._ok()
        raw = RawSend(sock, length, self._swallow, None, deliver)
        raw.timer = self._after((sock.send_to or 60) * 1000, lambda: self._raw_timeout(raw))
        self._raw = raw

    def _finish_raw(self):
        raw, self._raw = self._raw, None
        raw.timer.cancel()
        self._reply = []
        if self._sockets.get(raw.sock.id) is not raw.sock or raw.sock.state == SOCK_CLOSED:
            self._info(self._error_line(2154))
        else:
            raw.deliver(bytes(raw.buf))
        self._flush_reply(raw.swallow)

    def _raw_timeout(self, raw):
        if self._raw is not raw:
            return
        self._raw = None
        log.warning("binary send: %d of %d bytes came in time", len(raw.buf), raw.need)
        self._reply = []
        self._info(self._error_line(2154))
        self._flush_reply(raw.swallow)

    def _send(self, sock, data):
        try:
            sock.conn.send(data)
        except OSError as exc:
            log.warning("socket %d: send failed: %s", sock.id, exc)
            self._info(self._error_line(2154))
            return
        log.info("socket %d: sent %d bytes", sock.id, len(data))
        self._ok()

    # AT#IPREAD=<cid>,<sock>: one frame, length-framed.
    def _h_ipread(self, op, args):
        if op != "set":
            raise _PlainError()
        fields = split_args(args)
        if len(fields) < 2:
            raise _CmeError(3)
        cid, sock_id = self._ints(fields[:2])
        if cid != CID:
            raise _CmeError(2106)
        sock = self._socket(sock_id)
        frame = sock.frames.popleft() if sock.frames else b""
        head = f"#IPREAD: {CID},{sock.id},{len(frame)}"
        self._reply.append(
            (
                b"\r\n" + head.encode() + b"\r\n" + frame + self.profile.ipread_trailer,
                f"{head} <{len(frame)} bytes> OK",
            )
        )

    def _h_socketclose(self, op, args):
        if op != "set":
            raise _PlainError()
        fields = split_args(args)
        if len(fields) != 2:
            raise _CmeError(3)
        cid, sock_id = self._ints(fields)
        if cid != CID:
            raise _CmeError(2106)
        sock = self._socket(sock_id)
        self._free(sock)
        self._ok()

    def _free(self, sock):
        if sock.conn is not None:
            sock.conn.close()
            sock.conn = None
        with self._sock_lock:
            self._sockets.pop(sock.id, None)
        if self._raw is not None and self._raw.sock is sock:
            self._raw.timer.cancel()
            self._raw = None

    # Every socket closed and freed (reboot, radio off, IP stack dropped).
    def _drop_sockets(self, urc):
        for sock in self._sockets_by_id():
            was_connected = sock.state == SOCK_CONNECTED
            self._free(sock)
            if urc and was_connected:
                self._urc(f"#SOCKETCLOSED: {CID},{sock.id}")

    # Reader thread events, run on the worker.

    def _net_data(self, sock, conn, data):
        if self._sockets.get(sock.id) is not sock or sock.conn is not conn:
            return  # closed meanwhile
        for start in range(0, len(data), MAX_PAYLOAD):
            self._queue_frame(sock, data[start : start + MAX_PAYLOAD])
        log.info("socket %d: received %d bytes", sock.id, len(data))

    # One frame for AT#IPREAD, announced as the socket's <urc> asks.
    def _queue_frame(self, sock, frame):
        self._touch()
        if self._state == ASLEEP:
            self._wake(f"{len(frame)} bytes from the network")
        sock.frames.append(frame)
        if sock.urc == 1:
            self._urc(f"#IPRECV: {CID},{sock.id}")
        elif sock.urc == 2:
            self._urc(f"#IPRECV: {CID},{sock.id},{len(frame)}")

    def _net_closed(self, sock, conn, reason):
        if self._sockets.get(sock.id) is not sock or sock.conn is not conn:
            return
        log.info("socket %d: %s", sock.id, reason)
        conn.close()
        sock.conn = None
        sock.state = SOCK_CLOSED
        self._urc(f"#SOCKETCLOSED: {CID},{sock.id}")
