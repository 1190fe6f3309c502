# What every AT command handler shares: the two error results and the parameter parsers. A
# file of its own so that the credential commands (creds.py) and the rest of the interpreter
# (module.py) use the same ones without importing each other.

import string

HEXDIGITS = frozenset(string.hexdigits)
BARE = None  # the code of a bare "+CME ERROR"


# The command fails with "+CME ERROR: <code>" (a bare "+CME ERROR" when code is BARE).
class CmeError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


# The command fails with a plain "ERROR".
class PlainError(Exception):
    pass


# Split AT parameters at commas outside quotes; strip blanks and quotes. With `count`, at
# most that many fields are returned and the last one is the raw rest of the line.
def split_args(args, count=None):
    fields = []
    start = 0
    quoted = False
    for i, ch in enumerate(args):
        if count is not None and len(fields) == count - 1:
            break
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append(unquote(args[start:i]))
            start = i + 1
    rest = args[start:]
    fields.append(rest if count is not None else unquote(rest))
    return fields


def unquote(field):
    field = field.strip()
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1]
    return field


def ints(fields, code=3):
    try:
        return [int(f) for f in fields]
    except ValueError:
        raise CmeError(code) from None


# Hex payload whose declared length is `length` bytes, or CmeError(code).
def hex_payload(text, length, code):
    if len(text) != 2 * length or not HEXDIGITS.issuperset(text):
        raise CmeError(code)
    return bytes.fromhex(text)


# The data in the last field of AT#IPSENDTCP/AT#IPSENDUDP by <type>: 0 text inline, 2 hex
# inline, 1 binary (the field is the length and the bytes follow the OK). Returns (data, its
# length), with data None for binary.
def send_payload(kind, field):
    if kind == 0:
        data = unquote(field).encode("latin-1")
    elif kind == 2:
        hex_text = unquote(field)
        data = hex_payload(hex_text, len(hex_text) // 2, 3)
    elif kind == 1:
        (length,) = ints([field])
        return None, length
    else:
        raise CmeError(3)
    return data, len(data)
