"""The key sequence that detaches a client from a container's terminal, in docker's syntax:
comma-separated keys, each a single character or `ctrl-X` with X one of a-z @ [ \\ ] ^ _
("ctrl-p,ctrl-q", the default; "ctrl-a"; "ctrl-x,x")."""

from __future__ import annotations

from basin.errors import BasinError

DEFAULT = "ctrl-p,ctrl-q"

_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
_CTRL.update({chr(c): c - ord("a") + 1 for c in range(ord("a"), ord("z") + 1)})


def parse(spec: str | None) -> bytes:
    spec = spec or DEFAULT
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1 and key.isascii():
            out += key.encode()
            continue
        low = key.lower()
        if low.startswith("ctrl-") and len(low) == 6 and low[5] in _CTRL:
            out.append(_CTRL[low[5]])
            continue
        raise BasinError(
            f"invalid detach keys {spec!r}: use comma-separated single characters or ctrl-X"
            " (X one of a-z @ [ \\ ] ^ _), e.g. ctrl-p,ctrl-q"
        )
    return bytes(out)


class Matcher:
    """Watches keystrokes for the detach sequence. Bytes that might begin it are held back
    until the next key decides; everything else passes through unchanged."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send on, whether the sequence was completed). Input after a completed
        sequence is dropped: the client is leaving."""
        out = bytearray()
        for i in range(len(data)):
            cand = self.held + data[i : i + 1]
            while cand and not self.keys.startswith(cand):
                out += cand[:1]  # the oldest held byte cannot begin the sequence
                cand = cand[1:]
            self.held = cand
            if self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False
