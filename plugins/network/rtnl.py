"""A small rtnetlink client: just the requests the bridge driver makes, packed by hand.

pyroute2 0.9's sync IPRoute runs an asyncio loop under every call: ~0.3-0.5 ms of Python
per request, ~0.5 ms to open, ~140 ms to import. The same requests over a plain
NETLINK_ROUTE socket cost tens of microseconds, which is most of what attaching a
container to a bridge costs once the kernel's own work is counted.

A netlink socket belongs to the network namespace of the thread that created it, for its
whole life, whichever thread uses it later: so a container's socket is opened by the one
thread that visits namespaces (netns.socket_in) and then used from any thread. Requests on
one Rtnl are serialised by a lock, so threads may share one.

Message layouts (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h): every message is a
16-byte nlmsghdr, a fixed family header (ifinfomsg, ifaddrmsg, rtmsg), then attributes:
2-byte length, 2-byte type, payload padded to 4 bytes; nested attributes hold attributes.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

from plugins.network.netns import socket_in

NETLINK_ROUTE = 0

# message types
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_GETROUTE = 26

# flags
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

# multicast groups (bind's second field is a bitmask of them)
RTMGRP_LINK = 0x1

# link attributes
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_UP = 0x1

# address and route attributes
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
RTA_DST = 1
RTA_GATEWAY = 5
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4  # what `ip route add` and pyroute2 mark routes with
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type
_RTATTR = struct.Struct("=HH")  # len, type
_ERR = struct.Struct("=i")
_U32 = struct.Struct("=I")
RECV_BUFSIZE = 1 << 16  # the kernel fills dump replies up to 32 KB


class NetlinkError(OSError):
    """The kernel refused a request; ``errno`` says why."""


def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    n = _RTATTR.size + len(payload)
    return _RTATTR.pack(n, kind) + payload + b"\0" * (_pad(n) - n)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind, b"".join(attrs))


def u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def cstr(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def ifinfo(index: int = 0, up: bool | None = None) -> bytes:
    """An ifinfomsg; ``up`` True/False sets or clears IFF_UP, None leaves flags alone."""
    change = 0 if up is None else IFF_UP
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, change)


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> Iterator[tuple[int, memoryview]]:
    view = memoryview(data)
    while offset + _RTATTR.size <= len(view):
        n, kind = _RTATTR.unpack_from(view, offset)
        if n < _RTATTR.size:
            break
        yield kind & 0x3FFF, view[offset + _RTATTR.size : offset + n]  # drop NESTED/BYTEORDER
        offset += _pad(n)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


# --- change requests, for Rtnl.batch: (type, flags, body) ---

Request = tuple[int, int, bytes]


def set_link(name: str, *, up: bool | None = None, master: int | None = None) -> Request:
    """Change a link found by name (no index lookup: the kernel resolves it)."""
    attrs = cstr(IFLA_IFNAME, name)
    if master is not None:
        attrs += u32(IFLA_MASTER, master)
    return RTM_NEWLINK, 0, ifinfo(up=up) + attrs


def add_addr(index: int, ip: str, prefixlen: int, broadcast: str | None = None) -> Request:
    packed = ipaddress.IPv4Address(ip).packed
    attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    if broadcast is not None:
        attrs += attr(IFA_BROADCAST, ipaddress.IPv4Address(broadcast).packed)
    head = _IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, head + attrs


def add_default_route(gateway: str) -> Request:
    head = _RTMSG.pack(
        socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
    )
    gw = attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, head + gw


def _messages(data: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(type, seq, payload) of each message in a datagram."""
    view = memoryview(data)
    offset = 0
    while offset + _NLMSGHDR.size <= len(view):
        length, mtype, _f, seq, _pid = _NLMSGHDR.unpack_from(view, offset)
        if length < _NLMSGHDR.size:
            raise NetlinkError(errno.EPROTO, "malformed netlink message")
        yield mtype, seq, view[offset + _NLMSGHDR.size : offset + length]
        offset += _pad(length)


def _ifname(ifinfomsg: memoryview) -> str | None:
    for kind, value in parse_attrs(ifinfomsg, _IFINFOMSG.size):
        if kind == IFLA_IFNAME:
            return bytes(value).rstrip(b"\0").decode()
    return None


class Rtnl:
    """One NETLINK_ROUTE socket, in the namespace it was opened in (see the module doc)."""

    def __init__(self, ns_fd: int | None = None) -> None:
        self.sock = open_socket(ns_fd)
        self._lock = threading.Lock()
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, memoryview]]:
        """Send one request; return the (type, payload) of every reply message before its
        ack (or, for a dump, its NLMSG_DONE). Raises NetlinkError on a negative ack."""
        return self._exchange([(kind, flags, body)])[0]

    def batch(self, *requests: Request) -> None:
        """Send several change requests (no dumps: a socket runs one at a time) in one
        datagram: the kernel carries them out in order, each whatever became of the one
        before, and acks each. Raises the first refusal once all acks are in."""
        self._exchange(list(requests))

    def _exchange(self, requests: list[Request]) -> list[list[tuple[int, memoryview]]]:
        out: list[list[tuple[int, memoryview]]] = [[] for _ in requests]
        error: NetlinkError | None = None
        with self._lock:
            first = self._seq + 1
            chunks = []
            for i, (kind, flags, body) in enumerate(requests):
                dump = flags & NLM_F_DUMP == NLM_F_DUMP
                flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
                seq = (first + i) & 0xFFFFFFFF
                chunks.append(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0))
                chunks.append(body)
            self._seq = (first + len(requests) - 1) & 0xFFFFFFFF
            self.sock.sendto(b"".join(chunks), (0, 0))
            pending = len(requests)
            while pending:
                data, _anc, msg_flags, _addr = self.sock.recvmsg(RECV_BUFSIZE)
                if msg_flags & socket.MSG_TRUNC:
                    raise NetlinkError(errno.EMSGSIZE, "netlink reply truncated")
                for mtype, mseq, payload in _messages(data):
                    i = (mseq - first) & 0xFFFFFFFF
                    if i >= len(requests):
                        continue  # an answer to an earlier request abandoned by an exception
                    if mtype == NLMSG_ERROR:
                        (code,) = _ERR.unpack_from(payload)
                        if code and error is None:
                            error = NetlinkError(-code, os.strerror(-code))
                        pending -= 1
                    elif mtype == NLMSG_DONE:
                        pending -= 1
                    else:
                        out[i].append((mtype, payload))
        if error is not None:
            raise error
        return out

    # --- links ---

    def link_index(self, name: str) -> int | None:
        try:
            replies = self.request(RTM_GETLINK, 0, ifinfo() + cstr(IFLA_IFNAME, name))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        for mtype, payload in replies:
            if mtype == RTM_NEWLINK:
                return int(_IFINFOMSG.unpack_from(payload)[2])
        return None

    def link_names(self) -> set[str]:
        body = ifinfo() + u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        names: set[str] = set()
        for mtype, payload in self.request(RTM_GETLINK, NLM_F_DUMP, body):
            name = _ifname(payload) if mtype == RTM_NEWLINK else None
            if name is not None:
                names.add(name)
        return names

    def wait_link_gone(self, name: str, timeout: float) -> bool:
        """Wait until no link here is called name: True once there is none, False if one
        still is after timeout. Sleeps on link notifications, no polling."""
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as events:
            events.bind((0, RTMGRP_LINK))  # before looking: a deletion in between still shows
            if self.link_index(name) is None:
                return True
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                events.settimeout(left)
                try:
                    data = events.recv(RECV_BUFSIZE)
                except TimeoutError:
                    break
                except OSError as e:
                    if e.errno != errno.ENOBUFS:
                        raise
                    if self.link_index(name) is None:  # notifications were lost: look
                        return True
                    continue
                for mtype, _seq, payload in _messages(data):
                    # AF_UNSPEC: the link itself; a bridge also announces the port leaving it
                    # with an RTM_DELLINK of family AF_BRIDGE, before the link is gone
                    unspec = mtype == RTM_DELLINK and payload[0] == socket.AF_UNSPEC
                    if unspec and _ifname(payload) == name:
                        return True
            return self.link_index(name) is None

    def add_bridge(self, name: str, mac: str) -> None:
        self.request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            ifinfo()
            + cstr(IFLA_IFNAME, name)
            + attr(IFLA_ADDRESS, mac_bytes(mac))
            + nest(IFLA_LINKINFO, cstr(IFLA_INFO_KIND, "bridge")),
        )

    def add_veth(
        self,
        name: str,
        peer: str,
        *,
        peer_netns_fd: int | None = None,
        master: int | None = None,
        up: bool = False,
    ) -> None:
        """A veth pair: ``name`` here, up if ``up`` and a port of ``master`` from its first
        moment, and ``peer`` in the namespace open at ``peer_netns_fd``. One request, so
        nothing half-made to undo but the pair itself. The peer starts down whatever its
        flags say (veth_open of the peer fails with ENOTCONN before the pair is linked):
        bring it up with set_link."""
        peer_attrs = cstr(IFLA_IFNAME, peer)
        if peer_netns_fd is not None:
            peer_attrs += u32(IFLA_NET_NS_FD, peer_netns_fd)
        attrs = cstr(IFLA_IFNAME, name)
        if master is not None:
            attrs += u32(IFLA_MASTER, master)
        linkinfo = nest(
            IFLA_LINKINFO,
            cstr(IFLA_INFO_KIND, "veth"),
            nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs)),
        )
        body = ifinfo(up=up or None) + attrs + linkinfo
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_link(self, name: str, *, up: bool | None = None, master: int | None = None) -> None:
        self.request(*set_link(name, up=up, master=master))

    def del_link(self, name: str) -> bool:
        """Delete a link by name; False if there was none. A veth takes its peer along."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + cstr(IFLA_IFNAME, name))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
        return True

    # --- addresses and routes ---

    def add_addr(self, index: int, ip: str, prefixlen: int, broadcast: str | None = None) -> None:
        self.request(*add_addr(index, ip, prefixlen, broadcast))

    def has_default_route(self) -> bool:
        """Whether the main table has an IPv4 default route."""
        head = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        for mtype, payload in self.request(RTM_GETROUTE, NLM_F_DUMP, head):
            if mtype != RTM_NEWROUTE:
                continue
            _fam, dst_len, _s, _t, table, _p, _sc, rtype, _fl = _RTMSG.unpack_from(payload)
            for kind, value in parse_attrs(payload, _RTMSG.size):
                if kind == RTA_TABLE:
                    (table,) = _U32.unpack_from(value)
            if dst_len == 0 and table == RT_TABLE_MAIN and rtype == RTN_UNICAST:
                return True
        return False

    def add_default_route(self, gateway: str) -> None:
        self.request(*add_default_route(gateway))


def open_socket(ns_fd: int | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's network namespace, or in the one
    open at ns_fd."""
    if ns_fd is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    else:
        sock = socket_in(ns_fd, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock
