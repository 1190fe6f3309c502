# st87-cred: keys, certificates and AT provisioning lines for ST87MXX modules, and
# provisioning of a module (or st87-sim) over a serial port.

import argparse
import datetime
import getpass
import json
import logging
import os
import sys

from cryptography.exceptions import UnsupportedAlgorithm

from . import __version__
from ._lib import st87
from .certs import (
    Certificate,
    Request,
    issue,
    make_ca,
    make_csr,
    parse_subject,
    show_name,
    show_time,
    utcnow,
)
from .checks import Checker
from .errors import UsageError, explain
from .keys import CERT_LABELS, CURVES, PrivateKey, key_for_driver, select_pem

log = logging.getLogger(__name__)

PROG = "st87-cred"
_PASSWORD_ENV = "ST87CRED_PASSWORD"


# argparse reports usage errors by exiting; raising instead lets main() print them in the
# same one-line form (and as JSON with --json) as every other error.
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


class Output:
    def __init__(self, as_json):
        self.json = as_json

    # A line of the text output (nothing with --json).
    def say(self, line):
        if not self.json:
            print(line, flush=True)

    def done(self, ok, **data):
        if self.json:
            print(json.dumps({"ok": ok, **data}, indent=1))
        return 0 if ok else 1


# --- files and passwords ---------------------------------------------------------------------


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError("cannot read {} {}: {}".format(what, path, exc.strerror)) from None


# Keys are written owner-only, and an existing key file is never replaced by accident: a lost
# CA key means a fleet that cannot get new certificates.
def _write(path, data, secret=False, overwrite=False):
    if secret:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise UsageError("{} exists: --overwrite replaces it".format(path)) from None
        except OSError as exc:
            raise UsageError("cannot write {}: {}".format(path, exc.strerror)) from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UsageError("cannot write {}: {}".format(path, exc.strerror)) from None


# A function that gives the password of an encrypted key, asked only when one is met:
# from $ST87CRED_PASSWORD, else from the terminal.
def _password_for(what):
    def ask():
        if _PASSWORD_ENV in os.environ:
            return os.environ[_PASSWORD_ENV].encode()
        if not sys.stdin.isatty():
            raise UsageError(
                "{} is encrypted: set {} or run on a terminal".format(what, _PASSWORD_ENV)
            )
        return getpass.getpass("password for {}: ".format(what)).encode()

    return ask


def _new_password(enabled):
    if not enabled:
        return None
    if _PASSWORD_ENV in os.environ:
        return os.environ[_PASSWORD_ENV].encode()
    if not sys.stdin.isatty():
        raise UsageError("--password: set {} or run on a terminal".format(_PASSWORD_ENV))
    first = getpass.getpass("new key password: ")
    if not first or first != getpass.getpass("again: "):
        raise UsageError("the passwords are empty or differ")
    return first.encode()


def _time(text, option):
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("{}: {!r} is not an ISO date or time".format(option, text)) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc)


def _days(text):
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError("{!r} is not a number of days".format(text))
    return days


def _subject(text):
    try:
        return parse_subject(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --- subcommands -------------------------------------------------------------------------------


def cmd_ca(args, out):
    key = PrivateKey.generate(args.curve)
    cert = make_ca(key, args.cn, args.days)
    password = _new_password(args.password)
    _write(args.out_key, key.export(args.format, "pkcs8", password), True, args.overwrite)
    _write(args.out_cert, cert.export(args.format))
    shown = "{}, {}".format(show_name(cert.subject), key.describe())
    out.say("wrote CA certificate {}: {}".format(args.out_cert, shown))
    out.say("valid until {}".format(show_time(cert.not_after)))
    out.say("wrote CA key {} ({})".format(args.out_key, "encrypted" if password else "plain"))
    return out.done(
        True,
        cert=args.out_cert,
        key=args.out_key,
        subject=show_name(cert.subject),
        curve=key.curve,
        not_after=cert.not_after.isoformat(),
    )


def cmd_keygen(args, out):
    key = PrivateKey.generate(args.curve)
    form = "pkcs8" if args.pkcs8 else "sec1"
    data = key.export(args.format, form, _new_password(args.password))
    _write(args.out, data, True, args.overwrite)
    spki = key.public_der().hex().upper()
    shown = "{} {}".format(form.upper(), args.format.upper())
    out.say("wrote {} key {} ({})".format(key.describe(), args.out, shown))
    out.say("public key: " + spki)
    return out.done(True, key=args.out, curve=key.curve, form=form, public_key=spki)


def cmd_csr(args, out):
    subject = _subject(args.subject)
    if args.key:
        key = PrivateKey.load(_read(args.key, "key"), _password_for(args.key))
        throwaway = False
    else:
        # The module keeps only the subject of a dummy CSR: any key will do, then it is gone.
        key = PrivateKey.generate(args.curve)
        throwaway = True
    request = make_csr(subject, key)
    encoding = "pem" if args.pem else "der"
    _write(args.out, request.export(encoding))
    kind = "dummy CSR" if throwaway else "CSR"
    shown = "{} ({} bytes DER)".format(show_name(subject), len(request.der))
    out.say("wrote {} {} for {}".format(kind, args.out, shown))
    return out.done(
        True,
        csr=args.out,
        subject=show_name(subject),
        der_length=len(request.der),
        dummy=throwaway,
    )


def cmd_issue(args, out):
    request = Request.load(_read(args.csr, "CSR"))
    ca_cert = Certificate.load(_read(args.ca_cert, "CA certificate"), "CA certificate")
    ca_key = PrivateKey.load(_read(args.ca_key, "CA key"), _password_for(args.ca_key))
    not_before = _time(args.not_before, "--not-before") if args.not_before else None
    cert = issue(request, ca_cert, ca_key, args.days, not_before, args.server, args.dns or ())
    _write(args.out, cert.export("pem" if args.pem else "der"))
    shown = "{} issued by {}".format(show_name(cert.subject), show_name(cert.issuer))
    out.say("wrote certificate {}: {}".format(args.out, shown))
    out.say("valid {} to {}".format(show_time(cert.not_before), show_time(cert.not_after)))
    return out.done(
        True,
        cert=args.out,
        subject=show_name(cert.subject),
        issuer=show_name(cert.issuer),
        not_before=cert.not_before.isoformat(),
        not_after=cert.not_after.isoformat(),
        der_length=len(cert.der),
    )


def cmd_check(args, out):
    if not (args.cert or args.ca):
        raise UsageError("check what? give --cert and/or --ca")
    if args.key and not args.cert:
        raise UsageError("--key is checked against --cert")
    if args.server_cert and not args.ca:
        raise UsageError("--server-cert is checked against --ca")
    at = _time(args.at, "--at") if args.at else None
    checker = Checker(at=at, line_cap=args.line_cap, sec_id=args.sec_id)
    files = {}
    inputs = (("cert", "certificate"), ("key", "key"), ("ca", "CA"), ("server_cert", "server"))
    for name, what in inputs:
        path = getattr(args, name)
        files[name] = _read(path, what) if path else None
    password = _password_for(args.key) if args.key else None
    checker.run(files["cert"], files["key"], files["ca"], files["server_cert"], password)
    for finding in checker.findings:
        out.say(str(finding))
    return out.done(checker.ok, findings=[f.as_dict() for f in checker.findings])


# The credential options `at` and `provision` share, as tls.plan() arguments.
def _plan_args(args):
    if (args.psk is not None or args.psk_file) and args.identity is None:
        raise UsageError("--psk needs --identity")
    if args.identity is not None and args.psk is None and not args.psk_file:
        raise UsageError("--identity needs --psk or --psk-file")
    psk = args.psk
    if args.psk_file:
        psk = _read(args.psk_file, "PSK file").decode("ascii", "replace").strip()
    creds = {"generate": args.generate, "curve": args.curve, "psk": psk}
    creds["identity"] = args.identity
    for name, what in (("ca", "CA certificate"), ("cert", "client certificate")):
        path = getattr(args, name)
        creds[name] = select_pem(_read(path, what), CERT_LABELS, what) if path else None
    creds["key"] = None
    if args.key:
        creds["key"] = key_for_driver(_read(args.key, "private key"), _password_for(args.key))
    if not any(v for k, v in creds.items() if k != "curve"):
        raise UsageError("nothing to provision: give --ca, --key/--generate, --cert or --psk")
    return creds


def cmd_at(args, out):
    steps = st87.tls.plan(args.sec_id, line_cap=args.line_cap, **_plan_args(args))
    lines = []
    for step in steps:
        if args.redact and step.secret:
            line = step.head.decode() + "<secret {} bytes>".format(len(step.data))
        else:
            line = step.line().decode()
        lines.append(line)
        out.say(line)
    return out.done(True, lines=lines)


def _trace(direction, data):
    log.debug("%s %s", direction, bytes(data).decode("ascii", "replace"))


# The module behind --port (pyserial; a pty of st87-sim works too) or --sim (st87-sim in this
# process): (Modem, close function).
def _open_modem(args):
    trace = _trace if log.isEnabledFor(logging.DEBUG) else None
    if args.sim:
        try:
            from st87sim import FakeUART, Module
        except ImportError:
            raise UsageError("--sim needs st87-sim (the st87-tools package)") from None
        module = Module(state_path=args.sim_state)
        uart = FakeUART(module)
        close = module.close
    else:
        from .serialport import SerialUART

        uart = SerialUART(args.port, args.baud)
        close = uart.close
    # rxbuf: the hex line of a signed CSR is the longest reply, well under 2 KB.
    return st87.Modem(uart, trace=trace, line_cap=args.line_cap, rxbuf=2048), close


def _wanted(args):
    from .provision import Wanted

    if args.generate and args.cert:
        raise UsageError(
            "--generate makes the key in the module: its certificate is issued with "
            "--ca-cert/--ca-key, not given with --cert"
        )
    if bool(args.ca_cert) != bool(args.ca_key):
        raise UsageError("--ca-cert and --ca-key go together")
    if args.generate and not args.csr_subject:
        raise UsageError("--generate needs --csr-subject (the subject of its certificate)")
    if args.generate and not (args.ca_cert or args.csr_out):
        raise UsageError("--generate needs --ca-cert/--ca-key to issue, or --csr-out")
    if args.csr_subject and not args.generate:
        raise UsageError("--csr-subject is for a key generated with --generate")
    if args.sim_state and not args.sim:
        raise UsageError("--sim-state is for --sim")
    creds = _plan_args(args)
    # The local checks before the module is even opened: bad input never touches it.
    st87.tls.plan(args.sec_id, line_cap=args.line_cap, **creds)
    wanted = Wanted(
        generate=args.generate, curve=args.curve, psk=creds["psk"], identity=creds["identity"]
    )
    if creds["ca"]:
        wanted.ca = Certificate.load(creds["ca"], "CA certificate")
    if creds["cert"]:
        wanted.cert = Certificate.load(creds["cert"], "client certificate")
    if creds["key"]:
        wanted.key = (creds["key"], PrivateKey.load(creds["key"], _password_for(args.key)))
    if args.csr_subject:
        wanted.csr_subject = _subject(args.csr_subject)
    if args.ca_cert:
        ca_cert = Certificate.load(_read(args.ca_cert, "issuing CA"), "issuing CA certificate")
        ca_key = PrivateKey.load(_read(args.ca_key, "issuing CA key"), _password_for(args.ca_key))
        wanted.issuer = (ca_cert, ca_key, args.days)
    # Writing a certificate that has expired is allowed (the module does not check), but it
    # is rarely what was meant.
    now = utcnow()
    for cert, what in ((wanted.ca, "CA certificate"), (wanted.cert, "client certificate")):
        if cert is not None and not cert.not_before <= now <= cert.not_after:
            span = "{} to {}".format(show_time(cert.not_before), show_time(cert.not_after))
            log.warning("%s is not valid now (%s)", what, span)
    return wanted


def cmd_provision(args, out):
    from .provision import Provisioner

    wanted = _wanted(args)
    modem, close = _open_modem(args)
    try:
        modem.start()
        prov = Provisioner(modem, args.sec_id, out.say)
        ok, result = prov.run(wanted, save=not args.no_save, force=args.force)
    finally:
        close()
    if args.csr_out and prov.signed_csr is not None:
        _write(args.csr_out, prov.signed_csr.der)
        result["csr_out"] = args.csr_out
        out.say("wrote the signed CSR to " + args.csr_out)
    if prov.issued is not None:
        result["issued"] = {
            "subject": show_name(prov.issued.subject),
            "not_after": prov.issued.not_after.isoformat(),
        }
        if args.cert_out:
            _write(args.cert_out, prov.issued.der)
            result["cert_out"] = args.cert_out
            out.say("wrote the issued certificate to " + args.cert_out)
    return out.done(ok, **result)


# --- the parser --------------------------------------------------------------------------------


def _common(p, top):
    # The same options before or after the subcommand; a subcommand's default must not
    # override what was given before it, hence SUPPRESS there.
    default = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log the AT exchange (redacted)", **default
    )
    p.add_argument("--json", action="store_true", help="machine-readable output", **default)


def _curve(p):
    p.add_argument("--curve", choices=list(CURVES), default=None, help="default secp256r1")


def _cred_options(p):
    p.add_argument("--sec-id", type=int, required=True, help="security profile id")
    p.add_argument("--ca", metavar="FILE", help="CA root certificate (DER or PEM)")
    p.add_argument("--cert", metavar="FILE", help="client certificate (DER or PEM)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--key", metavar="FILE", help="EC private key to import (SEC1/PKCS#8)")
    key.add_argument("--generate", action="store_true", help="have the module generate the key")
    _curve(p)
    psk = p.add_mutually_exclusive_group()
    psk.add_argument("--psk", metavar="HEX", help="pre-shared key, hex")
    psk.add_argument("--psk-file", metavar="FILE", help="file holding the PSK as hex")
    p.add_argument("--identity", metavar="TEXT", help="PSK identity")
    p.add_argument("--line-cap", type=int, default=1600, help="the firmware's command line cap")


def _parser():
    parser = _Parser(prog=PROG, description="Credentials for ST87MXX NB-IoT modules.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    _common(parser, True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        _common(p, False)
        p.set_defaults(func=func)
        return p

    p = command("ca", cmd_ca, "make a test CA (EC, self-signed)")
    p.add_argument("--out-cert", metavar="FILE", required=True)
    p.add_argument("--out-key", metavar="FILE", required=True)
    p.add_argument("--cn", default="st87 test CA", help="common name")
    p.add_argument("--days", type=_days, default=3650)
    p.add_argument("--curve", choices=list(CURVES), default="secp256r1")
    p.add_argument("--format", choices=("pem", "der"), default="pem")
    p.add_argument("--password", action="store_true", help="encrypt the key (PKCS#8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing key file")

    p = command("keygen", cmd_keygen, "make an EC private key for the module")
    p.add_argument("--out", metavar="FILE", required=True)
    p.add_argument("--curve", choices=list(CURVES), default="secp256r1")
    p.add_argument("--format", choices=("pem", "der"), default="pem")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--sec1", action="store_true", help="SEC1 ECPrivateKey (the default)")
    form.add_argument("--pkcs8", action="store_true", help="PKCS#8 PrivateKeyInfo")
    p.add_argument("--password", action="store_true", help="encrypt the key")
    p.add_argument("--overwrite", action="store_true", help="replace an existing key file")

    p = command("csr", cmd_csr, "make a (dummy) CSR for a subject")
    p.add_argument("--subject", required=True, help='e.g. "CN=dev1,O=Acme" or "/O=Acme/CN=dev1"')
    p.add_argument("--out", metavar="FILE", required=True)
    p.add_argument("--key", metavar="FILE", help="sign with this key (default: a throwaway one)")
    p.add_argument("--curve", choices=list(CURVES), default="secp256r1")
    p.add_argument("--pem", action="store_true", help="PEM (default DER, as the module takes)")

    p = command("issue", cmd_issue, "issue a certificate for a CSR")
    p.add_argument("--csr", metavar="FILE", required=True)
    p.add_argument("--ca-cert", metavar="FILE", required=True)
    p.add_argument("--ca-key", metavar="FILE", required=True)
    p.add_argument("--out", metavar="FILE", required=True)
    p.add_argument("--days", type=_days, default=365)
    p.add_argument("--not-before", metavar="ISO", help="start of validity (default: now)")
    p.add_argument("--server", action="store_true", help="a server certificate (serverAuth)")
    p.add_argument("--dns", action="append", metavar="NAME", help="subjectAltName DNS name")
    p.add_argument("--pem", action="store_true", help="PEM (default DER, as the module takes)")

    p = command("check", cmd_check, "check credentials against what the module takes")
    p.add_argument("--cert", metavar="FILE", help="client certificate")
    p.add_argument("--key", metavar="FILE", help="its private key")
    p.add_argument("--ca", metavar="FILE", help="CA root certificate")
    p.add_argument("--server-cert", metavar="FILE", help="the server's certificate")
    p.add_argument("--at", metavar="DATE", help="judge validity at this ISO date (default now)")
    p.add_argument("--sec-id", type=int, default=0, help="profile id, for the line lengths")
    p.add_argument("--line-cap", type=int, default=1600)

    p = command("at", cmd_at, "print the AT lines that provision a profile")
    _cred_options(p)
    p.add_argument("--redact", action="store_true", help="print secrets as <secret N bytes>")

    p = command("provision", cmd_provision, "provision a module's profile and verify it")
    _cred_options(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="DEV", help="serial device (or st87-sim's pty)")
    where.add_argument("--sim", action="store_true", help="an st87-sim module in this process")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--sim-state", metavar="FILE", help="st87-sim ITS state file (--sim)")
    p.add_argument("--csr-subject", metavar="DN", help="subject for the generated key's CSR")
    p.add_argument("--ca-cert", metavar="FILE", help="CA that issues the generated key's cert")
    p.add_argument("--ca-key", metavar="FILE", help="its private key")
    p.add_argument("--days", type=_days, default=365, help="validity of the issued certificate")
    p.add_argument("--csr-out", metavar="FILE", help="save the module's signed CSR")
    p.add_argument("--cert-out", metavar="FILE", help="save the issued certificate")
    p.add_argument("--no-save", action="store_true", help="do not commit (AT#RESET=1)")
    p.add_argument("--force", action="store_true", help="clear the profile, then write all")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    try:
        args = _parser().parse_args(argv)
        as_json = args.json
        # -v is about this tool's own exchange: an in-process st87-sim keeps its level.
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
        )
        if args.verbose:
            logging.getLogger("st87cred").setLevel(logging.DEBUG)
        return args.func(args, Output(as_json))
    except UsageError as exc:
        return _error(exc, 2, as_json)
    except (ValueError, UnsupportedAlgorithm, st87.ModemError, OSError) as exc:
        return _error(exc, 1, as_json)
    except KeyboardInterrupt:
        return _error("interrupted", 130, as_json)


def _error(exc, code, as_json):
    text = explain(exc) if isinstance(exc, BaseException) else exc
    print("{}: error: {}".format(PROG, text), file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "error": text}))
    return code


if __name__ == "__main__":
    sys.exit(main())
