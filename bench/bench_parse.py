# Parse throughput: one recorded mixed stream (command replies, URCs, #IPREAD frames with
# binary payloads, long hex lines) fed through a fake UART in 64-byte chunks, into st87's
# channel and into the naive driver, in the same run. Bytes per second of each (best of
# several rounds, time.ticks_us) and their ratio. Prints one JSON line.
#   micropython bench_parse.py [rounds] [repeat]

import json
import sys
import time

from fakeuart import Replay
from naive import Naive

from st87.at import Channel, field_int

_HEX = b"0123456789ABCDEF"


def hexlify(data):
    out = bytearray(2 * len(data))
    for i, b in enumerate(data):
        out[2 * i] = _HEX[b >> 4]
        out[2 * i + 1] = _HEX[b & 15]
    return bytes(out)


def reply(*lines):
    return b"".join(b"\r\n" + ln + b"\r\n" for ln in lines) + b"\r\nOK\r\n"


def urc(line):
    return b"\r\n" + line + b"\r\n"


def payload(n, seed):
    # Binary, with CR and LF bytes in it: a frame is taken by its length, never by lines.
    return bytes((seed + i * 31) & 0xFF for i in range(n))


# The recording: (kind, command, reply). Kinds: "cmd" (information lines), "read" (#IPREAD
# frame), "hex" (an information line then a long hex line).
def recording():
    rec = []
    cert = hexlify(payload(459, 5))  # a client certificate's worth: 918 hex digits
    key = hexlify(payload(91, 9))
    for i in range(8):
        rec.append(
            (
                "cmd",
                b"AT+CEREG?",
                urc(b"+CSCON: 1") + reply(b'+CEREG: 2,1,"1A2B","01A2D101",9'),
            )
        )
        rec.append(("cmd", b"AT#IPCFG?", reply(b"#IPCFG: 5,0,1", b"#IPCFG: 1,0,0")))
        for n in (64, 256, 1024, 17):
            rec.append(
                (
                    "read",
                    b"AT#IPREAD=5,0",
                    urc(b"#IPRECV: 5,0")
                    + b"\r\n#IPREAD: 5,0,"
                    + str(n).encode()
                    + b"\r\n"
                    + payload(n, i + n)
                    + b"\r\nOK\r\n",
                )
            )
        rec.append(("hex", b"AT#TLSCERTADD=0,0", reply(b"#TLSCERTADD: 0,0,459", cert)))
        rec.append(("hex", b"AT#TLSKEYADD=0,1,2,2", reply(b"#TLSKEYADD: 0,1,2,2,91", key)))
        rec.append(("cmd", b"ATI", reply(b"ST87M01")))
        rec.append(("cmd", b"AT+CGPADDR=5", urc(b"+CEREG: 5") + reply(b'+CGPADDR: 5,"10.0.0.7"')))
    return rec


class Counts:
    def __init__(self):
        self.urcs = 0
        self.frames = 0
        self.lines = 0


def run_st87(rec, uart, counts, dest, spill):
    ch = Channel(uart, None, 1024)

    def on_urc(buf, s, e):
        counts.urcs += 1
        field_int(buf, s, e, 0)

    for prefix in (b"#IPRECV:", b"+CSCON:", b"+CEREG:"):
        ch.on(prefix, on_urc)
    reads = {}
    # The library's optimisation is in progress: transact(..., dest, spill) in the newer form,
    # transact(..., frame=(dest, spill)) in the older. Pick whichever this build takes.
    form = [None]

    def transact(c):
        if form[0] is None:
            try:
                r = ch.transact(c, b"AT#IPREAD", b"#IPREAD:", 5000, dest, spill)
                form[0] = 1
                return r
            except TypeError:
                form[0] = 0
        if form[0]:
            return ch.transact(c, b"AT#IPREAD", b"#IPREAD:", 5000, dest, spill)
        return ch.transact(c, b"AT#IPREAD", b"#IPREAD:", 5000, frame=(dest, spill))

    def go():
        for kind, cmd, _ in rec:
            if kind == "read":
                c = reads.get(cmd)
                if c is None:
                    c = reads[cmd] = cmd + b"\r"
                if transact(c):
                    counts.frames += 1
            else:
                counts.lines += len(ch.command(cmd, 5000))

    return go


def run_naive(rec, uart, counts, dest):
    drv = Naive(uart)

    def go():
        for kind, cmd, _ in rec:
            if kind == "read":
                if drv.read_frame(0, dest):
                    counts.frames += 1
            else:
                counts.lines += len(drv.command(cmd.decode()))
        counts.urcs = drv.urcs

    return go


def timed(go, uart, repeat):
    best = None
    for _ in range(repeat):
        uart.reset()
        t = time.ticks_us()
        go()
        dt = time.ticks_diff(time.ticks_us(), t)
        if best is None or dt < best:
            best = dt
    return best


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    rec = recording()
    segments = [r for _, _, r in rec] * repeat
    rec = rec * repeat
    total = sum(len(s) for s in segments)
    dest = memoryview(bytearray(1024))
    spill = memoryview(bytearray(1500))

    u1 = Replay(segments, 64)
    c1 = Counts()
    go1 = run_st87(rec, u1, c1, dest, spill)
    u2 = Replay(segments, 64)
    c2 = Counts()
    go2 = run_naive(rec, u2, c2, dest)

    best1 = best2 = None
    for _ in range(rounds):  # interleaved, so both see the same machine state
        t1 = timed(go1, u1, 1)
        t2 = timed(go2, u2, 1)
        best1 = t1 if best1 is None or t1 < best1 else best1
        best2 = t2 if best2 is None or t2 < best2 else best2
    st = total * 1000000 / best1
    nv = total * 1000000 / best2
    print(
        json.dumps(
            {
                "stream_bytes": total,
                "st87_bps": st,
                "naive_bps": nv,
                "ratio": st / nv,
                "frames": [c1.frames // rounds, c2.frames // rounds],
                "urcs": [c1.urcs // rounds, c2.urcs // rounds],
                "rounds": rounds,
            }
        )
    )


main()
