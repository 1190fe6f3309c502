# Parse throughput: one recorded mixed stream (command replies, URCs, #IPREAD frames with
# binary payloads, long hex lines) fed through a fake UART in 64-byte chunks, into st87's
# channel and into the naive driver, in the same run. Bytes per second of each (best of
# several rounds, time.ticks_us) and their ratio. Prints one JSON line.
#   micropython bench_parse.py [rounds] [repeat]
# With --only, one pass of one part and nothing printed, for counting its instructions under
# valgrind (bench/run.py subtracts a run with "none", which sets up the same and parses nothing):
#   micropython bench_parse.py --only st87|naive|fake-into|fake-read|none [repeat]

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

    def spill_for(k):
        return spill

    def go():
        for kind, cmd, _ in rec:
            if kind == "read":
                c = reads.get(cmd)
                if c is None:
                    c = reads[cmd] = cmd + b"\r"
                if ch.transact(c, b"AT#IPREAD", b"#IPREAD:", 5000, dest, spill_for):
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


# The fake UART alone, through the calls a driver makes: one command line written per
# segment, then reads until the segment is drained (readinto for st87, read for the naive).
def run_fake(rec, uart, with_read):
    rx = memoryview(bytearray(1024))

    def go():
        for _ in rec:
            uart.write(b"AT\r")
            if with_read:
                while uart.read():
                    pass
            else:
                while uart.readinto(rx):
                    pass

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
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    args = sys.argv[3:] if only else sys.argv[1:]
    rounds = 1 if only else int(args[0]) if args else 5
    repeat = int(args[-1]) if only and args else int(args[1]) if len(args) > 1 else 4
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

    u3 = Replay(segments, 64)
    go3 = run_fake(rec, u3, False)
    u4 = Replay(segments, 64)
    go4 = run_fake(rec, u4, True)

    if only:
        parts = {"st87": (go1, u1), "naive": (go2, u2), "fake-into": (go3, u3)}
        parts["fake-read"] = (go4, u4)
        if only != "none":
            timed(parts[only][0], parts[only][1], 1)
        return

    best = [None] * 4
    for _ in range(rounds):  # interleaved, so all see the same machine state
        for j, (go, u) in enumerate(((go1, u1), (go2, u2), (go3, u3), (go4, u4))):
            t = timed(go, u, 1)
            best[j] = t if best[j] is None or t < best[j] else best[j]
    best1, best2, fake_into, fake_read = best
    st = total * 1000000 / best1
    nv = total * 1000000 / best2
    # The drivers' own time: each run less the fake UART serving the same calls alone.
    own = (best2 - fake_read) / (best1 - fake_into)
    print(
        json.dumps(
            {
                "stream_bytes": total,
                "st87_bps": st,
                "naive_bps": nv,
                "ratio": st / nv,
                "own_ratio": own,
                "fake_us": [fake_into, fake_read],
                "st87_us": best1,
                "naive_us": best2,
                "frames": [c1.frames // rounds, c2.frames // rounds],
                "urcs": [c1.urcs // rounds, c2.urcs // rounds],
                "rounds": rounds,
            }
        )
    )


main()
