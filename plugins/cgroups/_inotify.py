"""inotify through ctypes (the standard library has no binding). Used to wait for changes of
cgroup2 event files such as memory.events, which the kernel reports as IN_MODIFY."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOEXEC = 0o2000000  # == O_CLOEXEC
IN_NONBLOCK = 0o4000  # == O_NONBLOCK

# the interpreter's own C library (find_library would run `ldconfig -p` in a subprocess)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_init1.restype = ctypes.c_int
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_add_watch.restype = ctypes.c_int


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def watch_modify(path: Path) -> int:
    """A non-blocking, close-on-exec inotify fd that becomes readable when ``path`` changes."""
    fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
    try:
        _check(
            _libc.inotify_add_watch(fd, os.fsencode(path), IN_MODIFY), f"inotify_add_watch {path}"
        )
    except OSError:
        os.close(fd)
        raise
    return fd
