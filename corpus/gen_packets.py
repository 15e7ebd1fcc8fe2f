#!/usr/bin/env python3
"""Generate the corpus sample packets and captures (stdlib only, deterministic).

Writes:
  packets/NN_<name>.bin   one raw Ethernet frame per file (the sample set)
  packets/index.json      [{"name", "file", "len", "description"}] in run order
  pcap/samples.pcapng     the sample set, one EPB per frame, name as opt_comment
  pcap/mixed.pcap         ~300 packets of mixed traffic, little-endian, usec
  pcap/mixed-ns-be.pcap   the same traffic, big-endian, nanosecond magic
  pcap/mixed.pcapng       the same traffic as pcapng (if_tsresol = 9, ns)
  pcap/mixed-snap96.pcap  the first 100 packets captured with snaplen 96 (caplen < len)
  pcap/multi-if.pcapng    40 packets on two interfaces: Ethernet and Linux cooked (SLL, 113)
  pcap/bad-truncated.pcap 5 packets, the file cut 10 bytes short (bad input)
  pcap/bad-magic.pcap     5 packets behind a wrong magic number (bad input)

Run from anywhere: paths are relative to this file's directory.
"""
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- helpers


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    # Minimal IPv6 text parser (supports one '::').
    if "::" in s:
        head, tail = s.split("::")
        h = [x for x in head.split(":") if x]
        t = [x for x in tail.split(":") if x]
        groups = h + ["0"] * (8 - len(h) - len(t)) + t
    else:
        groups = s.split(":")
    assert len(groups) == 8, s
    return b"".join(struct.pack("!H", int(g, 16)) for g in groups)


def csum(data):
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


MAC_A = mac("02:00:00:00:00:01")
MAC_B = mac("02:00:00:00:00:02")
BCAST = mac("ff:ff:ff:ff:ff:ff")

ETH_IP, ETH_IPV6, ETH_ARP, ETH_8021Q, ETH_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8


def eth(dst, src, proto, payload):
    return dst + src + struct.pack("!H", proto) + payload


def vlan(tci, proto, payload):
    return struct.pack("!HH", tci, proto) + payload


def ipv4(src, dst, proto, payload, ttl=64, ident=0x1234, options=b"", frag=0x4000, tos=0):
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, total, ident, frag, ttl, proto, 0,
                      ip4(src), ip4(dst)) + options
    c = csum(hdr)
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def pseudo4(src, dst, proto, length):
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, proto, length):
    return ip6(src) + ip6(dst) + struct.pack("!IxxxB", length, proto)


def udp(sport, dport, payload, pseudo=None, zero_csum=False):
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    if pseudo is not None and not zero_csum:
        c = csum(pseudo(17, length) + hdr + payload) or 0xFFFF
        hdr = hdr[:6] + struct.pack("!H", c)
    return hdr + payload


def tcp(sport, dport, seq, ack, flags, payload=b"", pseudo=None, window=64240, options=b""):
    assert len(options) % 4 == 0
    off = 5 + len(options) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options
    if pseudo is not None:
        c = csum(pseudo(6, len(hdr) + len(payload)) + hdr + payload)
        hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    return hdr + payload


def icmp_echo(typ, ident, seq, payload):
    hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    c = csum(hdr + payload)
    return struct.pack("!BBHHH", typ, 0, c, ident, seq) + payload


def ipv6(src, dst, nh, payload, hlim=64, flow=0):
    return struct.pack("!IHBB", (6 << 28) | flow, len(payload), nh, hlim) + ip6(src) + ip6(dst) + payload


def icmp6_echo(src, dst, ident, seq, payload):
    hdr = struct.pack("!BBHHH", 128, 0, 0, ident, seq)
    c = csum(pseudo6(src, dst, 58, len(hdr) + len(payload)) + hdr + payload)
    return struct.pack("!BBHHH", 128, 0, c, ident, seq) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip4(spa) + tha + ip4(tpa)


def p4(a, b):
    return lambda proto, length: pseudo4(a, b, proto, length)


def p6(a, b):
    return lambda proto, length: pseudo6(a, b, proto, length)


def pattern(n, seed=0):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


TCP_SYN, TCP_ACK, TCP_PSH, TCP_FIN, TCP_RST = 0x02, 0x10, 0x08, 0x01, 0x04
MSS_OPT = bytes([2, 4, 0x05, 0xB4])  # MSS 1460

# ------------------------------------------------------------ sample set


def v4_tcp(src, dst, sport, dport, flags, payload=b"", **kw):
    return eth(MAC_B, MAC_A, ETH_IP,
               ipv4(src, dst, 6, tcp(sport, dport, 1000, 0 if flags == TCP_SYN else 5000, flags, payload,
                                     pseudo=p4(src, dst)), **kw))


def v4_udp(src, dst, sport, dport, payload, zero_csum=False, **kw):
    return eth(MAC_B, MAC_A, ETH_IP,
               ipv4(src, dst, 17, udp(sport, dport, payload, pseudo=p4(src, dst), zero_csum=zero_csum), **kw))


def v6_ext_chain(src, dst, headers, final_nh, final):
    """headers: list of (nh_value, body_len_multiple_of_8_minus_2 ...) built back to front."""
    payload = final
    nh = final_nh
    for kind in reversed(headers):
        if kind == 44:  # fragment header: 8 bytes, first fragment, M=0
            payload = struct.pack("!BBHI", nh, 0, 0, 0xABCD) + payload
        else:
            body = bytes(6)  # PadN-free zero options: 2 + 6 = 8 bytes (hdrlen 0)
            if kind == 43:  # routing header type 0 segments-left 0
                body = bytes([0, 0]) + bytes(4)
            payload = struct.pack("!BB", nh, 0) + body + payload
        nh = kind
    return eth(MAC_B, MAC_A, ETH_IPV6, ipv6(src, dst, nh, payload))


DNS_QUERY = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")


def sample_packets():
    S = []

    def add(name, frame, desc):
        S.append((name, frame, desc))

    add("ipv4_tcp_syn", v4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, TCP_SYN),
        "IPv4 TCP SYN 10.0.0.1:40000 -> 10.0.0.2:80")
    add("ipv4_tcp_data", v4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, TCP_ACK | TCP_PSH,
                                b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"),
        "IPv4 TCP ACK+PSH with an HTTP request, same flow as the SYN")
    add("ipv4_tcp_syn_other", v4_tcp("10.0.0.3", "10.0.0.4", 51234, 443, TCP_SYN),
        "IPv4 TCP SYN 10.0.0.3 -> 10.0.0.4:443 (even destination)")
    add("ipv4_udp_dns", v4_udp("10.0.0.1", "10.0.0.254", 33333, 53, DNS_QUERY),
        "IPv4 UDP DNS query to 10.0.0.254:53 (NAT'ed by xdp_csum), valid UDP checksum")
    add("ipv4_udp_dns_nocsum", v4_udp("10.0.0.1", "10.0.0.254", 33334, 53, DNS_QUERY, zero_csum=True),
        "IPv4 UDP DNS query with UDP checksum 0 (none)")
    add("ipv4_udp_discard", v4_udp("10.0.0.7", "10.0.0.2", 5000, 9, pattern(18)),
        "IPv4 UDP to port 9 (discard)")
    add("ipv4_udp_to_gw", v4_udp("10.0.0.2", "10.0.0.1", 5353, 5353, pattern(40, 3)),
        "IPv4 UDP to 10.0.0.1 (odd address, has a next hop in xdp_redirect)")
    add("ipv4_icmp_echo", eth(MAC_B, MAC_A, ETH_IP,
                              ipv4("10.0.0.1", "10.0.0.2", 1, icmp_echo(8, 0x77, 1, pattern(56)))),
        "IPv4 ICMP echo request, 56 bytes of payload")
    add("ipv4_icmp_echo_ttl5", eth(MAC_B, MAC_A, ETH_IP,
                                   ipv4("192.168.1.10", "192.168.1.1", 1, icmp_echo(8, 0x1, 9, b"ping"), ttl=5)),
        "IPv4 ICMP echo request with TTL 5 and a short payload")
    add("ipv4_icmp_echo_options", eth(MAC_B, MAC_A, ETH_IP,
                                      ipv4("10.0.0.1", "10.0.0.2", 1, icmp_echo(8, 0x78, 2, pattern(8)),
                                           options=bytes([1, 1, 1, 0]))),
        "IPv4 ICMP echo request with 4 bytes of IP options (ihl 6)")
    add("ipv4_icmp_echo_reply", eth(MAC_B, MAC_A, ETH_IP,
                                    ipv4("10.0.0.2", "10.0.0.1", 1, icmp_echo(0, 0x77, 1, pattern(56)))),
        "IPv4 ICMP echo reply")
    add("ipv4_blocked_src", v4_tcp("10.0.0.66", "10.0.0.2", 6666, 22, TCP_SYN),
        "IPv4 TCP SYN from 10.0.0.66 (in the firewall's exact blocklist)")
    add("ipv4_blocked_prefix", v4_udp("203.0.113.7", "10.0.0.2", 123, 123, pattern(48)),
        "IPv4 UDP from 203.0.113.7 (inside the blocked prefix 203.0.113.0/24)")
    add("ipv4_blocked_prefix16", v4_tcp("172.16.9.9", "10.0.0.2", 1234, 80, TCP_SYN),
        "IPv4 TCP SYN from 172.16.9.9 (inside the blocked prefix 172.16.0.0/16)")
    add("ipv4_ttl1", v4_udp("10.0.0.9", "10.0.0.2", 7, 7, pattern(10), ttl=1),
        "IPv4 UDP with TTL 1")
    add("ipv4_gre", eth(MAC_B, MAC_A, ETH_IP, ipv4("10.1.1.1", "10.2.2.2", 47, bytes(4) + pattern(20))),
        "IPv4 protocol 47 (GRE), not TCP/UDP/ICMP")
    add("ipv4_fragment", eth(MAC_B, MAC_A, ETH_IP,
                             ipv4("10.0.0.1", "10.0.0.2", 1, pattern(24), frag=0x00B9)),
        "IPv4 ICMP non-first fragment (offset 185*8)")
    add("ipv6_tcp_syn", eth(MAC_B, MAC_A, ETH_IPV6,
                            ipv6("2001:db8::1", "2001:db8::2", 6,
                                 tcp(40001, 443, 1, 0, TCP_SYN, options=MSS_OPT,
                                     pseudo=p6("2001:db8::1", "2001:db8::2")))),
        "IPv6 TCP SYN with an MSS option")
    add("ipv6_udp", eth(MAC_B, MAC_A, ETH_IPV6,
                        ipv6("2001:db8::1", "2001:db8::53", 17,
                             udp(40002, 53, DNS_QUERY, pseudo=p6("2001:db8::1", "2001:db8::53")))),
        "IPv6 UDP DNS query")
    add("ipv6_icmp_echo", eth(MAC_B, MAC_A, ETH_IPV6,
                              ipv6("fe80::1", "fe80::2", 58, icmp6_echo("fe80::1", "fe80::2", 5, 1, pattern(32)))),
        "ICMPv6 echo request, link-local")
    add("ipv6_hop_limit1", eth(MAC_B, MAC_A, ETH_IPV6,
                               ipv6("2001:db8::1", "2001:db8::2", 17,
                                    udp(1, 2, b"x", pseudo=p6("2001:db8::1", "2001:db8::2")), hlim=1)),
        "IPv6 UDP with hop limit 1")
    add("ipv6_ext_headers", v6_ext_chain("2001:db8::1", "2001:db8::2", [0, 60, 43, 44], 17,
                                         udp(1000, 2000, pattern(16), pseudo=p6("2001:db8::1", "2001:db8::2"))),
        "IPv6 with hop-by-hop, destination options, routing and fragment headers, then UDP")
    add("ipv6_ext_too_many", v6_ext_chain("2001:db8::1", "2001:db8::2", [60] * 7, 6,
                                          tcp(1, 2, 3, 4, TCP_ACK, pseudo=p6("2001:db8::1", "2001:db8::2"))),
        "IPv6 with 7 destination-options headers (more than xdp_loop walks)")
    add("vlan_ipv4_udp", eth(MAC_B, MAC_A, ETH_8021Q,
                             vlan(100, ETH_IP, ipv4("10.0.0.1", "10.0.0.2", 17,
                                                    udp(1111, 2222, pattern(20), pseudo=p4("10.0.0.1", "10.0.0.2"))))),
        "802.1Q VLAN 100, IPv4 UDP inside")
    add("qinq_ipv6_tcp", eth(MAC_B, MAC_A, ETH_8021AD,
                             vlan(0x2000 | 200, ETH_8021Q,
                                  vlan(300, ETH_IPV6,
                                       ipv6("2001:db8::a", "2001:db8::b", 6,
                                            tcp(5, 6, 7, 8, TCP_SYN, pseudo=p6("2001:db8::a", "2001:db8::b")))))),
        "802.1ad outer tag 200 (PCP 1), 802.1Q inner tag 300, IPv6 TCP SYN")
    add("vlan_arp", eth(BCAST, MAC_A, ETH_8021Q,
                        vlan(7, ETH_ARP, arp(1, MAC_A, "10.0.7.1", bytes(6), "10.0.7.2") + bytes(14))),
        "802.1Q VLAN 7, ARP request inside, padded")
    add("arp_request", eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, "10.0.0.1", bytes(6), "10.0.0.2") + bytes(18)),
        "ARP who-has 10.0.0.2, padded to 60 bytes")
    add("lldp", eth(mac("01:80:c2:00:00:0e"), MAC_A, 0x88CC,
                    bytes.fromhex("020704020000000001040303657430060200780000")),
        "LLDP frame (EtherType 0x88cc, not IP)")
    add("runt_10", pattern(10, 1), "10-byte runt, shorter than an Ethernet header")
    add("eth_only_14", eth(MAC_B, MAC_A, ETH_IP, b""), "Ethernet header only, EtherType IPv4, no payload")
    add("ipv4_truncated", eth(MAC_B, MAC_A, ETH_IP, ipv4("10.0.0.1", "10.0.0.2", 6, b"")[:10]),
        "IPv4 header cut after 10 bytes")
    add("ipv6_truncated", eth(MAC_B, MAC_A, ETH_IPV6, ipv6("2001:db8::1", "2001:db8::2", 6, b"")[:30]),
        "IPv6 header cut after 30 bytes")
    add("ipv4_udp_1500", v4_udp("10.0.0.5", "10.0.0.6", 4000, 4001, pattern(1500 - 14 - 28, 5)),
        "IPv4 UDP, 1500-byte frame")
    add("ipv4_udp_3000", v4_udp("10.0.0.5", "10.0.0.6", 4000, 4001, pattern(3000 - 14 - 28, 6)),
        "IPv4 UDP, 3000-byte jumbo-ish frame")
    add("ipv4_udp_9000", v4_udp("10.0.0.5", "10.0.0.6", 4000, 4001, pattern(9000 - 14 - 28, 7)),
        "IPv4 UDP, 9000-byte jumbo frame (beyond a single test-run buffer)")
    add("ipv4_tcp_syn_again", v4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, TCP_SYN),
        "The first SYN once more (counters and flows must add up)")
    linux_syn_opts = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 0x01020304, 0) + bytes([1, 3, 3, 7])
    add("ipv4_tcp_syn_linux_opts", eth(MAC_B, MAC_A, ETH_IP,
                                       ipv4("10.0.0.8", "10.0.0.2", 6,
                                            tcp(45678, 443, 77, 0, TCP_SYN, options=linux_syn_opts,
                                                pseudo=p4("10.0.0.8", "10.0.0.2")))),
        "IPv4 TCP SYN with Linux's usual options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7")
    # Malformed but long enough to run: programs must not trust header fields.
    good = v4_udp("10.0.0.1", "10.0.0.2", 1000, 2000, pattern(24))
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x43  # ihl 3: shorter than the fixed header
    add("ipv4_bad_ihl", bytes(bad_ihl), "IPv4 UDP whose ihl field says 3 (12 bytes), checksum left as it was")
    ihl15 = bytearray(good)
    ihl15[14] = 0x4F  # ihl 15: 60-byte header claimed, frame holds less
    add("ipv4_ihl15", bytes(ihl15), "IPv4 UDP whose ihl field says 15 (60 bytes) in a 66-byte frame")
    lies = bytearray(good)
    struct.pack_into("!H", lies, 16, 1400)  # IP total length
    struct.pack_into("!H", lies, 38, 1380)  # UDP length
    add("ipv4_len_lies", bytes(lies), "IPv4 UDP whose IP total length (1400) and UDP length exceed the frame")
    add("vlan_truncated", eth(MAC_B, MAC_A, ETH_8021Q, struct.pack("!H", 100)),
        "802.1Q frame cut inside the tag (16 bytes)")
    add("eth_15", eth(MAC_B, MAC_A, ETH_IPV6, b"\x60"), "15 bytes: Ethernet header plus one byte of IPv6")
    return S


# ------------------------------------------------------------ mixed traffic


def mixed_traffic(n_target=300):
    """Deterministic synthetic trace: TCP sessions, DNS, pings, ARP, IPv6, VLAN."""
    rng = random.Random(20240601)
    t = 1_700_000_000 * 1_000_000_000 + 123_456_789  # ns
    out = []

    def emit(frame):
        nonlocal t
        t += rng.randint(20_000, 3_000_000)  # 20 us .. 3 ms apart
        out.append((t, frame))

    hosts = ["10.0.0.%d" % i for i in range(1, 21)]
    while len(out) < n_target:
        kind = rng.choice(["tcp", "tcp", "dns", "ping", "arp", "v6", "vlan"])
        a, b = rng.sample(hosts, 2)
        if kind == "tcp":
            sp, dp = rng.randint(32768, 60999), rng.choice([22, 80, 443, 8080])
            seq, ack = rng.getrandbits(32), rng.getrandbits(32)
            pa, pb = p4(a, b), p4(b, a)
            emit(eth(MAC_B, MAC_A, ETH_IP, ipv4(a, b, 6, tcp(sp, dp, seq, 0, TCP_SYN, options=MSS_OPT, pseudo=pa))))
            emit(eth(MAC_A, MAC_B, ETH_IP, ipv4(b, a, 6, tcp(dp, sp, ack, seq + 1, TCP_SYN | TCP_ACK,
                                                            options=MSS_OPT, pseudo=pb))))
            emit(eth(MAC_B, MAC_A, ETH_IP, ipv4(a, b, 6, tcp(sp, dp, seq + 1, ack + 1, TCP_ACK, pseudo=pa))))
            for i in range(rng.randint(1, 6)):
                body = pattern(rng.randint(1, 1400), i)
                emit(eth(MAC_A, MAC_B, ETH_IP, ipv4(b, a, 6, tcp(dp, sp, ack + 1, seq + 1, TCP_ACK | TCP_PSH,
                                                                body, pseudo=pb))))
            emit(eth(MAC_B, MAC_A, ETH_IP, ipv4(a, b, 6, tcp(sp, dp, seq + 1, ack + 1, TCP_FIN | TCP_ACK, pseudo=pa))))
        elif kind == "dns":
            emit(eth(MAC_B, MAC_A, ETH_IP, ipv4(a, "10.0.0.254", 17,
                                                udp(rng.randint(1024, 65535), 53, DNS_QUERY,
                                                    pseudo=p4(a, "10.0.0.254")))))
        elif kind == "ping":
            ident = rng.randint(1, 0xFFFF)
            for s in range(rng.randint(1, 3)):
                emit(eth(MAC_B, MAC_A, ETH_IP, ipv4(a, b, 1, icmp_echo(8, ident, s, pattern(56)))))
                emit(eth(MAC_A, MAC_B, ETH_IP, ipv4(b, a, 1, icmp_echo(0, ident, s, pattern(56)))))
        elif kind == "arp":
            emit(eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, a, bytes(6), b) + bytes(18)))
            emit(eth(MAC_A, MAC_B, ETH_ARP, arp(2, MAC_B, b, MAC_A, a) + bytes(18)))
        elif kind == "v6":
            s6, d6 = "2001:db8::%x" % rng.randint(1, 99), "2001:db8::%x" % rng.randint(100, 199)
            emit(eth(MAC_B, MAC_A, ETH_IPV6, ipv6(s6, d6, 17, udp(rng.randint(1024, 65535), 443,
                                                                  pattern(rng.randint(20, 1200)),
                                                                  pseudo=p6(s6, d6)))))
        else:
            emit(eth(MAC_B, MAC_A, ETH_8021Q, vlan(rng.choice([10, 20, 30]), ETH_IP,
                                                   ipv4(a, b, 17, udp(9999, 9999, pattern(64), pseudo=p4(a, b))))))
    return out


# ------------------------------------------------------------ writers

LINKTYPE_ETHERNET = 1


def write_pcap(path, packets, nanos=False, big_endian=False, snaplen=65535):
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for ts, frame in packets:
            sec, ns = divmod(ts, 1_000_000_000)
            frac = ns if nanos else ns // 1000
            cap = frame[:snaplen]
            f.write(struct.pack(e + "IIII", sec, frac, len(cap), len(frame)))
            f.write(cap)


def _opt(code, value):
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype, body):
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def write_pcapng(path, packets, tsresol_ns=True, comments=None, ifname=b"bpfkit0"):
    shb_opts = _opt(4, b"bpfkit corpus/gen_packets.py") + _opt(0, b"")  # shb_userappl
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts
    idb_opts = _opt(2, ifname)  # if_name
    if tsresol_ns:
        idb_opts += _opt(9, bytes([9]))  # if_tsresol = 10^-9
    idb_opts += _opt(0, b"")
    idb = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + idb_opts
    with open(path, "wb") as f:
        f.write(_block(0x0A0D0D0A, shb))
        f.write(_block(0x00000001, idb))
        for i, (ts, frame) in enumerate(packets):
            units = ts if tsresol_ns else ts // 1000
            pad = (-len(frame)) % 4
            body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
            body += frame + b"\0" * pad
            if comments is not None:
                body += _opt(1, comments[i].encode()) + _opt(0, b"")
            f.write(_block(0x00000006, body))


def sll_header(frame):
    """Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 113) header for an Ethernet frame."""
    # packet type 0 (to us), ARPHRD_ETHER, address length 6, source MAC padded to 8.
    return struct.pack("!HHH", 0, 1, 6) + frame[6:12] + b"\0\0" + frame[12:14]


def write_multi_if_pcapng(path, packets):
    """Two interfaces: 0 = Ethernet, 1 = Linux cooked (as captured on "any")."""
    blocks = []
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(4, b"bpfkit corpus/gen_packets.py") + _opt(0, b"")
    blocks.append(_block(0x0A0D0D0A, shb))
    blocks.append(_block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + _opt(2, b"eth0") + _opt(0, b"")))
    blocks.append(_block(1, struct.pack("<HHI", 113, 0, 0) + _opt(2, b"any") + _opt(0, b"")))
    for i, (ts, frame) in enumerate(packets):
        ifid = i % 2
        data = frame if ifid == 0 else sll_header(frame) + frame[14:]
        units = ts // 1000  # default resolution: microseconds
        pad = (-len(data)) % 4
        body = struct.pack("<IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(data), len(data)) + data + b"\0" * pad
        blocks.append(_block(6, body))
    with open(path, "wb") as f:
        f.write(b"".join(blocks))


def main():
    pkt_dir = os.path.join(HERE, "packets")
    pcap_dir = os.path.join(HERE, "pcap")
    os.makedirs(pkt_dir, exist_ok=True)
    os.makedirs(pcap_dir, exist_ok=True)
    for old in os.listdir(pkt_dir):
        if old.endswith(".bin"):
            os.remove(os.path.join(pkt_dir, old))

    samples = sample_packets()
    names = [n for n, _, _ in samples]
    assert len(set(names)) == len(names), "duplicate sample names"
    index = []
    for i, (name, frame, desc) in enumerate(samples):
        fname = "%02d_%s.bin" % (i, name)
        with open(os.path.join(pkt_dir, fname), "wb") as f:
            f.write(frame)
        index.append({"name": name, "file": fname, "len": len(frame), "description": desc})
    with open(os.path.join(pkt_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")

    t0 = 1_700_000_000 * 1_000_000_000
    write_pcapng(os.path.join(pcap_dir, "samples.pcapng"),
                 [(t0 + i * 1_000_000, fr) for i, (_, fr, _) in enumerate(samples)],
                 comments=names)
    mixed = mixed_traffic()
    write_pcap(os.path.join(pcap_dir, "mixed.pcap"), mixed)
    write_pcap(os.path.join(pcap_dir, "mixed-ns-be.pcap"), mixed, nanos=True, big_endian=True)
    write_pcapng(os.path.join(pcap_dir, "mixed.pcapng"), mixed)
    write_pcap(os.path.join(pcap_dir, "mixed-snap96.pcap"), mixed[:100], snaplen=96)
    write_multi_if_pcapng(os.path.join(pcap_dir, "multi-if.pcapng"), mixed[:40])
    # Bad input: a capture cut in the middle of the 5th record's data.
    write_pcap(os.path.join(pcap_dir, "mixed.pcap.tmp"), mixed[:5])
    with open(os.path.join(pcap_dir, "mixed.pcap.tmp"), "rb") as f:
        whole = f.read()
    os.remove(os.path.join(pcap_dir, "mixed.pcap.tmp"))
    with open(os.path.join(pcap_dir, "bad-truncated.pcap"), "wb") as f:
        f.write(whole[:len(whole) - 10])
    with open(os.path.join(pcap_dir, "bad-magic.pcap"), "wb") as f:
        f.write(b"\xde\xad\xbe\xef" + whole[4:])
    print("gen_packets: %d samples, %d mixed packets" % (len(samples), len(mixed)), file=sys.stderr)


if __name__ == "__main__":
    main()
