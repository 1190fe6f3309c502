# Heap bytes allocated per steady-state send + receive cycle (64-byte payloads into a caller
# buffer), st87 and the naive driver, from gc.mem_alloc() deltas with the collector off. The
# fake module's own allocations are measured alone (the same writes and reads, no driver) and
# subtracted. st87 is also measured with 1,024-byte payloads, which it copies through
# memoryview slices rather than byte by byte. Prints one JSON line.
#   micropython -X heapsize=8M bench_cycle.py [cycles]

import gc
import json
import sys

from fakeuart import Responder
from naive import Naive

import st87

PAYLOAD = 64
LARGE = 1024


def measure(cycle, n):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        cycle()
    b = gc.mem_alloc()
    gc.enable()
    gc.collect()
    return (b - a) / n


def st87_cycle(n, size=PAYLOAD):
    uart = Responder(size)
    modem = st87.Modem(uart, idle_probe_ms=None)
    modem.start()
    sock = modem.socket(st87.TCP, sec_id=0)
    sock.settimeout(5)
    sock.connect(("192.168.21.4", 4433))
    data = bytes(size)
    buf = bytearray(size)
    box = [0]

    def cycle():
        sock.send(data)
        box[0] = sock.readinto(buf)

    for _ in range(50):  # warm-up: spill buffer, cached command lines
        cycle()
    assert box[0] == size and bytes(buf) == uart.payload, "st87 cycle read wrong data"
    per = measure(cycle, n)
    return per, uart


def naive_cycle(n):
    uart = Responder(PAYLOAD)
    drv = Naive(uart)
    data = bytes(PAYLOAD)
    buf = bytearray(PAYLOAD)
    box = [0]

    def cycle():
        drv.send(0, data)
        box[0] = drv.readinto(0, buf)

    for _ in range(50):
        cycle()
    assert box[0] == PAYLOAD and bytes(buf) == uart.payload, "naive cycle read wrong data"
    return measure(cycle, n)


# The fake alone, through the same calls the st87 cycle makes (send command, payload, read
# command; reads until each reply is drained, into a preallocated buffer).
def fake_cycle(n, chunk_reads):
    uart = Responder(PAYLOAD)
    send = b"AT#IPSENDTCP=5,0,1,64\r"
    read = b"AT#IPREAD=5,0\r"
    data = bytes(PAYLOAD)
    rx = bytearray(1024)

    def drain():
        while uart.readinto(rx):
            pass

    def cycle():
        uart.write(send)
        drain()
        uart.write(data)
        drain()
        uart.write(read)
        drain()

    return measure(cycle, n)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    st, uart = st87_cycle(n)
    fake = fake_cycle(n, uart.reads)
    nv = naive_cycle(n)
    large, _ = st87_cycle(max(1, n // 10), LARGE)
    out = {
        "cycles": n,
        "st87_raw": st,
        "fake": fake,
        "st87": max(0.0, st - fake),
        "naive": nv,
        "naive_net_of_fake": max(0.0, nv - fake),
        "st87_1k": large,
    }
    print(json.dumps(out))


main()
