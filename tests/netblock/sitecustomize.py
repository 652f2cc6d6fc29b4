"""Loaded by every Python process of a test build (PYTHONPATH points here).

It refuses socket connections to anything but loopback, so the book build and
the Jupyter kernels it starts (which inherit the environment) fail loudly if a
page or an extension tries to reach the network. Kernels talk to the build
over loopback, which stays allowed.
"""

import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _is_local(address):
    if isinstance(address, (str, bytes)):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard(original):
    def connect(self, address):
        if not _is_local(address):
            raise OSError(f"network access blocked in the dlbook test build: {address!r}")
        return original(self, address)

    return connect


socket.socket.connect = _guard(_connect)
socket.socket.connect_ex = _guard(_connect_ex)
