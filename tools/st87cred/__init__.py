# st87-cred: host tool for ST87MXX credentials (keys, certificates, AT lines, provisioning).

__version__ = "0.1.0"
