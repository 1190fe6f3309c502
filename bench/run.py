# `make bench`: the benchmarks on the MicroPython unix port, from .mpy files compiled by
# mpy-cross. Prints one table, writes it to bench/results.md with the command and the
# MicroPython version, and ends with the summary line
#   bench: parse_ratio=<x> heap_per_cycle=<bytes> min_heap_psk=<KiB> min_heap_mtls=<KiB> ...
#
#   bench/run.py           the full run (about a minute or two)
#   bench/run.py --smoke   tiny counts and one fixed-heap check per flow; writes
#                          build/bench-smoke.md instead of bench/results.md (for the tests)
#
# The MicroPython scripts (bench_*.py, flow_mtls.py) print one JSON line each; this file
# runs them, bisects -X heapsize for the two flows against st87-sim (and openssl s_server for
# the PSK session), and formats the results. No figure here is asserted on.

import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BIN = os.path.dirname(sys.executable)
BUILD = os.path.join(ROOT, "build", "mpy")
VECTORS = "/work/shared/vectors/seed_vectors.json"
sys.path.insert(0, os.path.join(ROOT, "tests_host"))

from peers import OpenSSLServer  # noqa: E402

IDENTITY = "Client_identity"
NOTE_ADDRESS = "192.168.21.4:4433"
BIG_HEAP = "8M"

# Targets from the issue: (summary key, limit, at least/at most).
TARGETS = {
    "parse_ratio": (3, "min"),
    "heap_per_cycle": (32, "max"),
    "min_heap_psk": (32, "max"),
    "send_overhead": (32, "max"),
}


def tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


MPY = tool("micropython")
MPY_CROSS = tool("mpy-cross")


def compile_all():
    out = os.path.join(BUILD, "st87")
    if os.path.isdir(BUILD):
        shutil.rmtree(BUILD)
    os.makedirs(out)
    sizes = {}
    for src in sorted(glob.glob(os.path.join(ROOT, "lib", "st87", "*.py"))):
        name = os.path.splitext(os.path.basename(src))[0]
        dst = os.path.join(out, name + ".mpy")
        subprocess.run([MPY_CROSS, "-o", dst, src], check=True)
        sizes[name] = os.path.getsize(dst)
    # The bench modules imported by the scripts, and main.py, also as .mpy; the scripts are
    # compiled too (into a scratch directory) so a MicroPython-only error shows here.
    for name in ("fakeuart", "naive"):
        src = os.path.join(BENCH, name + ".py")
        subprocess.run([MPY_CROSS, "-o", os.path.join(BUILD, name + ".mpy"), src], check=True)
    subprocess.run(
        [MPY_CROSS, "-o", os.path.join(BUILD, "main.mpy"), os.path.join(ROOT, "main.py")],
        check=True,
    )
    check = os.path.join(ROOT, "build", "mpy-check")
    os.makedirs(check, exist_ok=True)
    for src in glob.glob(os.path.join(BENCH, "*.py")):
        if os.path.basename(src) == "run.py":
            continue
        dst = os.path.join(check, os.path.basename(src)[:-3] + ".mpy")
        subprocess.run([MPY_CROSS, "-o", dst, src], check=True)
    return sizes


def mpy_env():
    return dict(os.environ, MICROPYPATH=BUILD)


def run_mpy(args, heap=BIG_HEAP, timeout=120):
    proc = subprocess.run(
        [MPY, "-X", "heapsize=" + str(heap)] + args,
        env=mpy_env(),
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
    )
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(
            " ".join(args) + " failed:\n" + out + proc.stderr.decode(errors="replace")
        )
    return json.loads(out.strip().splitlines()[-1])


# --- parse work counted in instructions ----------------------------------------------------------


# Machine instructions (valgrind's callgrind) of one pass of the parse stream by each part:
# {"st87": n, "naive": n, "fake-into": n, "fake-read": n}, each less a run that sets up the same
# and parses nothing. Unlike times, these counts repeat to within about half a percent. None
# without valgrind.
def parse_instructions():
    valgrind = shutil.which("valgrind")
    if not valgrind:
        return None
    counts = {}
    for part in ("none", "fake-into", "fake-read", "st87", "naive"):
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", MPY]
            + ["-X", "heapsize=" + BIG_HEAP, os.path.join(BENCH, "bench_parse.py")]
            + ["--only", part, "4"],
            env=mpy_env(),
            capture_output=True,
            timeout=300,
        )
        m = re.search(rb"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not m:
            return None
        counts[part] = int(m.group(1))
    base = counts.pop("none")
    return {part: n - base for part, n in counts.items()}


# --- the two flows against the emulator ---------------------------------------------------


class Sim:
    def __init__(self, work, route=None):
        cmd = [tool("st87-sim"), "--pty", "--state", os.path.join(work, "its.json")]
        if route:
            cmd += ["--route", route]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        line = self.proc.stdout.readline().decode()
        m = re.match(r"pty: (\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError("st87-sim printed " + repr(line))
        self.pty = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


# What each flow imports: main imports st87 (at, errors, modem, sockets); tls, unix and, for
# certificates and keys, certs (which imports der) are imported on first use.
FLOW_MODULES = {"psk": "main, st87.tls, st87.unix", "mtls": "st87.certs, st87.unix"}

# Prepended to the PSK flow's -c code by Flows.run(peak=True): main.run's trace hook (trace on
# in the config) becomes one that prints nothing and keeps the largest live heap it saw.
PEAK_HOOK = (
    "import gc, main\n"
    "top = [0]\n"
    "def hook(direction, data):\n"
    "    gc.collect()\n"
    "    top[0] = max(top[0], gc.mem_alloc())\n"
    "main.trace = hook\n"
)


# gc.mem_alloc() delta (bytes) of importing modules (a "main, st87.tls" string) on the unix
# port in a big heap, after prelude (code run first, not counted); None if it failed. Run in a
# scratch directory: in ROOT, main.py would shadow build/mpy/main.mpy.
def import_heap(modules, prelude="", env=None):
    code = prelude + (
        "import gc\ngc.collect()\na = gc.mem_alloc()\nimport %s\ngc.collect()\n"
        "print(gc.mem_alloc() - a)\n" % modules
    )
    scratch = tempfile.mkdtemp(prefix="st87-code-")
    try:
        proc = subprocess.run(
            [MPY, "-X", "heapsize=" + BIG_HEAP, "-c", code],
            env=env or mpy_env(),
            capture_output=True,
            timeout=60,
            cwd=scratch,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return int(proc.stdout) if proc.returncode == 0 else None


# --- the same code on a 32-bit MicroPython -------------------------------------------------

# The webassembly port from npm, installed into build/wasm on first use. The unix port here is
# 64-bit (8-byte pointers, 32-byte heap blocks); this one is 32-bit, as the boards are.
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript@1.29.0-6"
WASM_MJS = os.path.join(
    ROOT,
    "build",
    "wasm",
    "node_modules",
    "@micropython",
    "micropython-webassembly-pyscript",
    "micropython.mjs",
)
# The PSK flow's imports that run there too (st87.unix needs termios; a board has machine.UART).
WASM_MODULES = "main, st87.tls"


# gc.mem_alloc() delta of importing modules (a "main, st87.tls" string) from build/mpy on the
# 64-bit unix port and on the 32-bit webassembly port: (unix, wasm32, why wasm32 is missing).
def code_heap_by_word_size(modules):
    unix = import_heap(modules)
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return unix, None, "node and npm are needed"
    if not os.path.exists(WASM_MJS):
        prefix = os.path.join(ROOT, "build", "wasm")
        os.makedirs(prefix, exist_ok=True)
        got = subprocess.run(
            [npm, "install", "--prefix", prefix, "--no-save", "--silent", WASM_PACKAGE],
            capture_output=True,
            timeout=300,
        )
        if got.returncode != 0:
            return unix, None, "npm install %s failed" % WASM_PACKAGE
    proc = subprocess.run(
        [node, os.path.join(BENCH, "wasm32.mjs"), WASM_MJS, BUILD, modules],
        capture_output=True,
        timeout=120,
    )
    m = re.search(rb"^code (\d+)", proc.stdout, re.M)
    if not m:
        return unix, None, "the webassembly port failed: " + proc.stderr.decode()[-200:]
    return unix, int(m.group(1)), None


# --- the package in ROMFS ----------------------------------------------------------------------

# On ports with a ROMFS partition, .mpy files there run in place: their bytecode and constant
# data stay in flash, and only the objects the code makes take heap. Here the image is read
# into a bytearray first (standing for the flash) and mounted with vfs.VfsRom.
ROMFS_IMAGE = os.path.join(ROOT, "build", "st87.romfs")
ROMFS_MOUNT = (
    "import os, sys, vfs\n"
    "img = bytearray(os.stat(%r)[6])\n"
    "with open(%r, 'rb') as f:\n"
    "    f.readinto(img)\n"
    "vfs.mount(vfs.VfsRom(img), '/rom')\n"
    "sys.path.insert(0, '/rom')\n"
)


# Build ROMFS_IMAGE from build/mpy (the st87 package and main.mpy) with mpremote; its size in
# bytes, or None without mpremote.
def romfs_image():
    mpremote = tool("mpremote")
    if not mpremote:
        return None
    stage = tempfile.mkdtemp(prefix="st87-romfs-")
    try:
        shutil.copytree(os.path.join(BUILD, "st87"), os.path.join(stage, "st87"))
        shutil.copy(os.path.join(BUILD, "main.mpy"), stage)
        got = subprocess.run(
            [mpremote, "romfs", "--no-mpy", "-o", ROMFS_IMAGE, "build", stage],
            capture_output=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return os.path.getsize(ROMFS_IMAGE) if got.returncode == 0 else None


# gc.mem_alloc() delta of importing modules from the mounted image (the image not counted).
def romfs_code_heap(modules):
    mount = ROMFS_MOUNT % (ROMFS_IMAGE, ROMFS_IMAGE)
    return import_heap(modules, mount, dict(os.environ, MICROPYPATH=""))


class Flows:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="st87-bench-")
        self.psk = secrets.token_hex(32)
        self.server = OpenSSLServer.psk(self.psk, IDENTITY, cipher="PSK-AES128-GCM-SHA256")
        self.server.start()
        from pki import PKI

        self.pki = PKI(os.path.join(self.work, "pki"))
        with open(VECTORS) as f:
            self.csr = json.load(f)["dummy_csr_4_4"]
        self.runs = 0
        _CA_LEN[0] = len(self.pki.der("ca"))

    def close(self):
        self.server.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    # One run of a flow with a fresh emulator (empty ITS) at heap KiB; True if it completed.
    def ok(self, flow, kib, romfs=False):
        return self.run(flow, "%dK" % kib, romfs=romfs) is not None

    # Run a flow at a heap size ("64K"); its output if it completed, else None. peak (PSK
    # only): main.run with a trace hook that collects and reads gc.mem_alloc() at every AT
    # line in and out, which then prints the largest figure as "peak <bytes>".
    # romfs (PSK only): main and st87 come from ROMFS_IMAGE, mounted first.
    def run(self, flow, heap, peak=False, romfs=False):
        self.runs += 1
        run = os.path.join(self.work, "run%d" % self.runs)
        os.makedirs(run)
        route = f"{NOTE_ADDRESS}=127.0.0.1:{self.server.port}" if flow == "psk" else None
        sim = Sim(run, route)
        try:
            cfg = os.path.join(run, "cfg.json")
            if flow == "psk":
                host, port = NOTE_ADDRESS.split(":")
                conf = {
                    "port": sim.pty,
                    "sec_id": 0,
                    "psk": self.psk,
                    "identity": IDENTITY,
                    "host": host,
                    "port_number": int(port),
                    "trace": peak,
                }
                code = "import main; main.run(main.load_config(%r))" % cfg
                if peak:
                    code = PEAK_HOOK + code + "; print('peak', top[0])"
                if romfs:
                    code = ROMFS_MOUNT % (ROMFS_IMAGE, ROMFS_IMAGE) + code
                args = ["-c", code]
                done = re.compile(r"^reply: \S", re.M)
            else:
                conf = {
                    "port": sim.pty,
                    "sec_id": 1,
                    "ca": self.pki.der("ca").hex(),
                    "csr": self.csr,
                }
                args = [os.path.join(BENCH, "flow_mtls.py"), cfg]
                done = re.compile(r"^mtls: ok", re.M)
            with open(cfg, "w") as f:
                json.dump(conf, f)
            try:
                # Run in the scratch directory, not the repository: '' comes first on the
                # unix port's sys.path, so ROOT/main.py (compiled from source, in this heap)
                # would shadow build/mpy/main.mpy.
                proc = subprocess.run(
                    [MPY, "-X", "heapsize=" + heap] + args,
                    env=dict(os.environ, MICROPYPATH="") if romfs else mpy_env(),
                    capture_output=True,
                    timeout=60,
                    cwd=run,
                )
            except subprocess.TimeoutExpired:
                return None
            out = proc.stdout.decode(errors="replace")
            return out if proc.returncode == 0 and done.search(out) else None
        finally:
            sim.stop()

    # The heap the flow's code takes (bytes): gc.mem_alloc() before and after importing the
    # modules the flow loads, in a big heap.
    def code_heap(self, flow):
        return import_heap(FLOW_MODULES[flow])

    # The PSK session's live heap at its fullest (bytes), sampled at every AT line.
    def live_peak(self):
        out = self.run("psk", BIG_HEAP, peak=True)
        m = re.search(r"^peak (\d+)", out or "", re.M)
        return int(m.group(1)) if m else None

    # The smallest heap (KiB) at which the flow completes, by bisection in 1 KiB steps.
    def smallest(self, flow, lo=4, hi=64, romfs=False):
        while not self.ok(flow, hi, romfs):
            lo, hi = hi, hi * 2
            if hi > 4096:
                return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.ok(flow, mid, romfs):
                hi = mid
            else:
                lo = mid
        return hi


# --- the table ------------------------------------------------------------------------------


def verdict(key, value):
    limit, kind = TARGETS[key]
    if value is None:
        return "not measured"
    met = value >= limit if kind == "min" else value <= limit
    return ("met" if met else "MISSED") + " (%s %s)" % (
        "at least" if kind == "min" else "at most",
        limit,
    )


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def main(argv):
    smoke = "--smoke" in argv
    sizes = compile_all()
    version = (
        subprocess.run(
            [MPY, "-c", "import sys; print(sys.version, sys.implementation._machine)"],
            capture_output=True,
            env=mpy_env(),
        )
        .stdout.decode()
        .strip()
    )

    parse = run_mpy(
        [os.path.join(BENCH, "bench_parse.py")] + (["1", "1"] if smoke else ["9", "4"])
    )
    instr = None if smoke else parse_instructions()
    cycle = run_mpy([os.path.join(BENCH, "bench_cycle.py"), "20" if smoke else "1000"], heap="32M")
    wire = run_mpy([os.path.join(BENCH, "bench_wire.py"), VECTORS])

    flows = Flows()
    try:
        if smoke:
            # One fixed, generous heap per flow: the flows still run, no bisection.
            psk = 256 if flows.ok("psk", 256) else None
            mtls = 256 if flows.ok("mtls", 256) else None
        else:
            psk = flows.smallest("psk")
            mtls = flows.smallest("mtls")
        # The PSK flow again with the package in ROMFS: the smallest heap less the image's
        # whole KiB (the image stands for flash; what it rounds up to stays counted).
        image = romfs_image()
        psk_rom = None
        if image is not None and not smoke:
            with_image = flows.smallest("psk", lo=image // 1024, hi=image // 1024 + 64, romfs=True)
            psk_rom = None if with_image is None else with_image - image // 1024
        runs = flows.runs
        # Where the heap goes: the code the flows load, and the PSK session's live heap.
        code_psk = flows.code_heap("psk")
        code_mtls = flows.code_heap("mtls")
        live_psk = flows.live_peak()
    finally:
        flows.close()
    code_rom = None if image is None else romfs_code_heap(WASM_MODULES)
    # The 32-bit comparison needs node and an npm download: full runs only.
    code64, code32, why32 = (
        (None, None, "not in a smoke run") if smoke else (code_heap_by_word_size(WASM_MODULES))
    )

    heap = round(cycle["st87"])
    s64 = wire["send"]["64"] - 64
    s1k = wire["send"]["1024"] - 1024
    overhead = max(s64, s1k)
    prov = wire["provision"]
    total = sum(sizes.values())
    le = "<=" if smoke else ""
    rows = [
        ("item", "st87", "reference", "target"),
        (
            "1. parse throughput, bytes/s",
            "%.0f" % parse["st87_bps"],
            "%.0f (naive)" % parse["naive_bps"],
            "",
        ),
        (
            "   parse ratio st87/naive",
            "%.2f" % parse["ratio"],
            "",
            verdict("parse_ratio", parse["ratio"]),
        ),
        ("   parse ratio, drivers' own time", "%.2f" % parse["own_ratio"], "", "(no target)"),
        (
            "   parse ratio in instructions (own)",
            "not measured"
            if instr is None
            else "%.2f (%.2f)"
            % (
                instr["naive"] / instr["st87"],
                (instr["naive"] - instr["fake-read"]) / (instr["st87"] - instr["fake-into"]),
            ),
            "" if instr is None else "%.1fM / %.1fM" % (instr["st87"] / 1e6, instr["naive"] / 1e6),
            "(no target)",
        ),
        (
            "2. heap per send+recv cycle, bytes",
            "%d" % heap,
            "%d (naive)" % round(cycle["naive"]),
            verdict("heap_per_cycle", heap),
        ),
        ("   heap per cycle, 1024-byte payloads", "%d" % round(cycle["st87_1k"]), "", ""),
        (
            "3. smallest heap, PSK session (main.py), KiB",
            "%s%s" % (le, psk),
            "",
            verdict("min_heap_psk", psk),
        ),
        ("   PSK: code heap after imports, KiB", kib(code_psk), "", ""),
        ("   PSK: live heap at its fullest, KiB", kib(live_psk), "", ""),
        (
            "   PSK: code heap of %s, 64-bit unix port, KiB" % WASM_MODULES,
            kib(code64),
            kib(code32) + " (32-bit)",
            "",
        ),
        (
            "   smallest heap, PSK session, package in ROMFS, KiB",
            "not measured" if psk_rom is None else "%d" % psk_rom,
            "",
            "" if psk_rom is None else verdict("min_heap_psk", psk_rom),
        ),
        ("   PSK: code heap of %s from ROMFS, KiB" % WASM_MODULES, kib(code_rom), "", ""),
        ("   smallest heap, mTLS provisioning, KiB", "%s%s" % (le, mtls), "", "(no target)"),
        ("   mTLS: code heap after imports, KiB", kib(code_mtls), "", ""),
        (
            "4. UART bytes, 64-byte send",
            "%d (+%d)" % (wire["send"]["64"], s64),
            "64 (payload)",
            verdict("send_overhead", s64),
        ),
        (
            "   UART bytes, 1024-byte send",
            "%d (+%d)" % (wire["send"]["1024"], s1k),
            "1024 (payload)",
            verdict("send_overhead", s1k),
        ),
        (
            "   UART bytes, 4.3 profile (key+cert)",
            "%d (lines %d)" % (prov["total"], prov["credential_lines"]),
            "%d (2 x %d DER)" % (prov["minimum"], prov["key_der"] + prov["cert_der"]),
            "%.3f x minimum" % (prov["total"] / prov["minimum"]),
        ),
        ("5. .mpy footprint, package, bytes", "%d" % total, "", ""),
    ]
    for name in sorted(sizes):
        rows.append(("   st87/%s.mpy" % name, "%d" % sizes[name], "", ""))
    summary = (
        "bench: parse_ratio=%.2f heap_per_cycle=%d min_heap_psk=%s min_heap_mtls=%s "
        "send_overhead=%d mpy_total=%d" % (parse["ratio"], heap, psk, mtls, overhead, total)
    )
    notes = [
        "",
        "Notes:",
        "- parse: %d-byte recorded stream (replies, URCs, #IPREAD frames of 17..1024 bytes, "
        "918-digit hex lines), 64-byte UART chunks, best of %d rounds, fake UART time included."
        " Own time: each driver's run less the fake UART serving the same calls alone (%d us"
        " of st87's %d us, %d us of the naive's %d us); a hardware UART's readinto is C, the"
        " fake's is Python. Instructions: valgrind's callgrind count for one pass by each"
        " driver (st87 / naive in the reference column), less a run that parses nothing; they"
        " repeat to within about half a percent, where the times swing with the machine."
        % (
            parse["stream_bytes"],
            parse["rounds"],
            parse["fake_us"][0],
            parse["st87_us"],
            parse["fake_us"][1],
            parse["naive_us"],
        ),
        "- heap: gc.mem_alloc() delta over %d cycles with gc disabled, after 50 warm-up cycles;"
        " fake UART alone: %.1f bytes/cycle (subtracted; the naive figure includes the bytes"
        " objects its uart.read() calls return). Payloads of up to 64 bytes are copied byte by"
        " byte through the receive buffer; a longer one is read into the caller's buffer, one"
        " memoryview slice per UART read (64-byte chunks here)."
        % (cycle["cycles"], cycle["fake"]),
        "- smallest heap: -X heapsize bisection in 1 KiB steps, a fresh st87-sim (empty ITS)"
        " per run (%d runs), 64-bit unix port (the 32-bit row shows the code heap is no"
        " smaller on 32 bits)."
        " PSK: main.py (trace off) provisions, commits, attaches, connects to openssl s_server"
        " and gets the reply. mTLS: bench/flow_mtls.py: add_ca (a P-256 CA from"
        " tests_host/pki.py, %d bytes; the note's CA vector is corrupt), generate_key, sign_csr"
        " (the note's dummy CSR), save; add_cert and the session are not included."
        % (runs, len_ca()),
        "- where the heap goes: code heap is the gc.mem_alloc() delta of importing what the"
        " flow loads (PSK: %s; mTLS: %s): bytecode, constants and qstrs, which firmware with"
        " the package frozen in keeps in flash, and the function, class and dict objects,"
        " which stay in RAM. The PSK live heap is the session's largest gc.mem_alloc() after"
        " a collection at each AT line (interpreter, code, buffers, objects); the smallest heap"
        " is larger by the free blocks this non-moving heap leaves too small for a request."
        % (FLOW_MODULES["psk"], FLOW_MODULES["mtls"]),
        "- ROMFS: the same .mpy files (st87 and main.mpy) in a ROMFS image built by mpremote"
        " (%s bytes), read into a bytearray that stands for the flash partition and mounted"
        " with vfs.VfsRom; the code runs in place, so its bytecode takes no heap. The smallest"
        " heap is the bisected -X heapsize less the image's whole KiB. The headline figure"
        " stays the plain filesystem case, the one mip installs."
        % ("not built: no mpremote" if image is None else image),
        "- 32-bit: the same .mpy files imported by MicroPython's webassembly port (%s, run by"
        " node): a 32-bit build like the boards', though not a board's configuration%s."
        % (WASM_PACKAGE, "" if code32 is not None else "; not measured: " + why32),
        (
            "- wire: bytes written to the UART; the 4.3 profile is private_key_der_4_3 +"
            " client_cert of the seed vectors, total includes the listing and AT+CFUN=4 that"
            " tls.write() sends."
        ),
    ]
    if smoke:
        notes.append("- SMOKE RUN: tiny counts, fixed 256 KiB heap check instead of bisection.")
    missed = [
        k
        for k, v in (
            ("parse_ratio", parse["ratio"]),
            ("heap_per_cycle", heap),
            ("min_heap_psk", None if smoke else psk),
            ("send_overhead", overhead),
        )
        if v is not None and verdict(k, v).startswith("MISSED")
    ]
    notes.append("- targets missed: " + (", ".join(missed) if missed else "none"))
    lines = table(rows) + notes
    command = "make bench (%s)" % " ".join(["bench/run.py"] + argv)
    doc = (
        ["# st87 benchmarks", "", "Command: `%s`" % command, "", "MicroPython: " + version, ""]
        + lines
        + ["", summary]
    )
    dest = (
        os.path.join(ROOT, "build", "bench-smoke.md")
        if smoke
        else os.path.join(BENCH, "results.md")
    )
    with open(dest, "w") as f:
        f.write("\n".join(doc) + "\n")
    print("\n".join(lines))
    print("MicroPython: " + version)
    print("written: " + os.path.relpath(dest, ROOT))
    print(summary)
    return 0


_CA_LEN = [0]


def kib(n):
    return "not measured" if n is None else "%.1f" % (n / 1024)


def len_ca():
    return _CA_LEN[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
