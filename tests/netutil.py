"""Helpers for tests that make networks: a free host port to publish."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    while True:
        port = random.randint(40000, 59999)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
