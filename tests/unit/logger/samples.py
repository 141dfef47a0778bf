"""Log lines in pvefw-logger's exact format (trailing blanks and glued fields included)."""

from __future__ import annotations

HOST_TCP = (
    "0 6 host-in 03/Dec/2026:23:59:58 +0000 ACCEPT: IN=eth0 "
    "MAC=52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00 SRC=192.0.2.10 DST=192.0.2.1 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=51000 DPT=22 SEQ=1234567890 "
    "ACK=0 WINDOW=64240 SYN "
)
GUEST_UDP = (
    "100 4 guest-100-in 04/Dec/2026:01:00:00 +0100 DROP: IN=fwbr100i0 OUT=fwbr100i0 "
    "PHYSIN=fwln100i0 PHYSOUT=tap100i0 MAC=bc:24:11:00:00:01:bc:24:11:00:00:02:08:00 "
    "SRC=198.51.100.7 DST=192.0.2.100 LEN=56 TOS=0x10 PREC=0x20 TTL=63 ID=4711 "
    "PROTO=UDP SPT=5353 DPT=53 LEN=36mark=100 "
)
GUEST_ARP = (
    "100 6 guest-100-out 04/Dec/2026:10:00:00 +0000 ACCEPT: IN=tap100i0 "
    "MAC=ff:ff:ff:ff:ff:ff:bc:24:11:00:00:01:08:06 SRC=192.0.2.100 DST=192.0.2.1 "
    "PROTO=ARP REPLY MAC=bc:24:11:00:00:01 "
)
GUEST_ICMP6 = (
    "1000 7 guest-1000-out 04/Dec/2026:10:00:01 +0000 policy DROP: IN=tap1000i0 "
    "SRC=fe80::1 DST=ff02::2 LEN=16 TC=0 FLOWLBL=0 HOPLIMIT=255 PROTO=ICMPV6 TYPE=133 "
    "CODE=0 "
)
STATUS = "0 5 - 04/Dec/2026:00:00:05 +0000 starting pvefw logger"
FALLBACK = (
    "0 6 - 04/Dec/2026:12:00:00 +0000 :100:6:a-chain-name-longer-than-28-chars: DROP: "
    "IN=eth0 SRC=192.0.2.9 DST=192.0.2.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 "
    "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 "
)
CONNTRACK = (
    "    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=51000 "
    "dport=22 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=22 dport=51000 mark=100"
)
