# st87-cred's errors. Bad credential data is a ValueError (as in lib/st87), the module's own
# failures are st87.ModemError; both exit 1. UsageError is for how the tool was called (an
# option missing, two that exclude each other, a file that cannot be read) and exits 2.


class UsageError(Exception):
    pass


# What the CME codes of PROTOCOL.md section 6 mean while provisioning.
_CME = {
    3: "operation not allowed",
    20: "ITS full",
    1300: "key not usable",
    1301: "element already exists",
    1302: "element does not exist",
    1303: "key and certificate do not match",
}


# An exception as one line for the user: the driver's ATError says which command failed and
# its code; the code's meaning is added here.
def explain(exc):
    text = str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code in _CME:
        text += " ({})".format(_CME[code])
    return text
