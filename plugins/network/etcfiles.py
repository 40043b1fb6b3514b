"""The /etc/resolv.conf and /etc/hosts a container gets. Pure functions: the caller reads
the host's files and writes the results into the container."""

from __future__ import annotations

import ipaddress

UPSTREAM_RESOLV = "/run/systemd/resolve/resolv.conf"  # systemd-resolved's real servers


def _nameserver(line: str) -> str | None:
    fields = line.split()
    if len(fields) >= 2 and fields[0] == "nameserver":
        return fields[1]
    return None


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(host_text: str, upstream_text: str | None) -> str:
    """The host's resolv.conf for a container. A loopback nameserver (127.0.0.53 of
    systemd-resolved, a local dnsmasq) is the container's own loopback once inside its
    network namespace, where nothing answers; so those are replaced by the non-loopback
    servers of upstream_text (systemd-resolved's list) or, without one, dropped. Search and
    options lines stay. No public resolver is invented when none is left: that choice
    belongs to the user."""
    upstream: list[str] = []
    for line in (upstream_text or "").splitlines():
        ns = _nameserver(line)
        if ns is not None and not _is_loopback(ns):
            upstream.append(ns)
    out: list[str] = []
    kept: set[str] = set()
    replaced = False
    for line in host_text.splitlines():
        ns = _nameserver(line)
        if ns is None:
            out.append(line)
        elif not _is_loopback(ns):
            if ns not in kept:
                kept.add(ns)
                out.append(line)
        elif not replaced:
            # upstream servers take the place of the first loopback one, keeping order
            replaced = True
            for up in upstream:
                if up not in kept:
                    kept.add(up)
                    out.append(f"nameserver {up}")
    return "\n".join(out) + "\n" if out else ""


def hosts_file(hostname: str, name: str, ip: str | None) -> str:
    """/etc/hosts naming the container by hostname and container name on its address."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    names = " ".join(dict.fromkeys(n for n in (hostname, name) if n))
    if names:
        lines.append(f"{ip or '127.0.1.1'}\t{names}")
    return "\n".join(lines) + "\n"
