# st87-sim: run the emulated module behind a pty or a loopback TCP port.

import argparse
import logging
import signal
import sys
import threading

from . import net, tls13
from .module import Module
from .profile import FirmwareProfile
from .pty import PtyServer, TcpServer


def _route(text):
    src, sep, dst = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected A:P=127.0.0.1:Q")
    try:
        net.parse_hostport(src)
        host, port = net.parse_hostport(dst)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not net.is_loopback(host):
        raise argparse.ArgumentTypeError(f"{text!r}: a route must lead to a loopback address")
    return src, (host, port)


def _dns(text):
    name, sep, ip = text.partition("=")
    if not sep or not name or not ip:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=IP")
    return name, ip


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number from 0 to 1")
    return value


def _profile(text):
    try:
        return FirmwareProfile.load(text)
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser():
    p = argparse.ArgumentParser(prog="st87-sim", description="ST87MXX NB-IoT module emulator")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument(
        "--tcp", metavar="HOST:PORT", type=net.parse_hostport, help="serve on a loopback port"
    )
    p.add_argument("--state", metavar="FILE", help="JSON file of the committed ITS")
    p.add_argument(
        "--profile", type=_profile, default=FirmwareProfile(), help="profile name or JSON file"
    )
    p.add_argument("--route", type=_route, action="append", default=[], metavar="A:P=127.0.0.1:Q")
    p.add_argument("--dns", type=_dns, action="append", default=[], metavar="NAME=IP")
    p.add_argument("--chunk", type=int, default=0, help="deliver output N bytes at a time")
    p.add_argument(
        "--loss",
        type=_fraction,
        default=0.0,
        metavar="RATE",
        help="lose this fraction of UDP datagrams each way (0..1)",
    )
    p.add_argument("--loss-seed", type=int, metavar="N", help="repeat the same losses every run")
    p.add_argument("-v", "--verbose", action="store_true", help="log the AT exchange to stderr")
    return p


def main(argv=None):
    if argv is None:
        # TLS 1.3 with exactly the module's suites (see tls13.py).
        tls13.reexec_with_module_suites()
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        module = Module(
            args.profile,
            state_path=args.state,
            routes=dict(args.route),
            dns=dict(args.dns),
            chunk=args.chunk,
            loss=args.loss,
            loss_seed=args.loss_seed,
        )
    except ValueError as exc:
        print(f"st87-sim: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    if args.pty:
        server = PtyServer(module)
        print(f"pty: {server.path}", flush=True)
    else:
        try:
            server = TcpServer(module, *args.tcp)
        except (ValueError, OSError) as exc:
            print(f"st87-sim: {exc}", file=sys.stderr)
            module.close()
            return 2
        print(f"tcp: {server.address[0]}:{server.address[1]}", flush=True)

    while not stop.wait(0.5):
        pass
    server.stop()
    module.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
