"""Parsing log lines, ordering rotated files and reading time arguments (pure)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from proxmox_fw.logger.reader import (
    LogReadError,
    Query,
    log_files,
    parse_line,
    parse_log_time,
    parse_time_arg,
    read_lines,
    select,
)
from tests.unit.logger import samples


def test_packet_line_fields_are_split_at_proto() -> None:
    line = parse_line(samples.HOST_TCP)
    assert (line.kind, line.vmid, line.loglevel, line.chain, line.policy) == (
        "packet", 0, 6, "host-in", "ACCEPT")
    assert line.time == datetime(2026, 12, 3, 23, 59, 58, tzinfo=UTC)
    assert line.fields == {
        "IN": "eth0", "MAC": "52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00",
        "SRC": "192.0.2.10", "DST": "192.0.2.1", "LEN": "60", "TOS": "0x00",
        "PREC": "0x00", "TTL": "64", "ID": "54321", "PROTO": "TCP",
    }
    assert line.l4 == {"SPT": "51000", "DPT": "22", "SEQ": "1234567890", "ACK": "0",
                       "WINDOW": "64240"}
    assert line.flags == ["DF", "SYN"]
    assert line.text == samples.HOST_TCP  # kept byte for byte, trailing blank included


def test_glued_udp_length_and_mark_are_two_fields() -> None:
    line = parse_line(samples.GUEST_UDP)
    assert line.fields["LEN"] == "56" and line.l4["LEN"] == "36"
    assert line.fields["mark"] == "100"
    assert line.fields["PHYSOUT"] == "tap100i0"
    assert line.time == datetime(2026, 12, 4, 0, 0, 0, tzinfo=UTC)
    assert line.time is not None and line.time.utcoffset() == timedelta(hours=1)


def test_arp_reply_mac_is_the_protocol_field() -> None:
    line = parse_line(samples.GUEST_ARP)
    assert line.fields["MAC"].endswith(":08:06") and line.l4 == {"MAC": "bc:24:11:00:00:01"}
    assert line.flags == ["REPLY"]


def test_policy_prefix_with_words() -> None:
    line = parse_line(samples.GUEST_ICMP6)
    assert (line.vmid, line.loglevel, line.policy) == (1000, 7, "policy DROP")
    assert line.l4 == {"TYPE": "133", "CODE": "0"}


def test_status_conntrack_and_unparsed_prefix_lines() -> None:
    status = parse_line(samples.STATUS)
    assert (status.kind, status.vmid, status.loglevel, status.chain, status.message) == (
        "status", 0, 5, "-", "starting pvefw logger")
    ct = parse_line(samples.CONNTRACK)
    assert (ct.kind, ct.event, ct.vmid, ct.time) == ("conntrack", "NEW", None, None)
    assert ct.epoch() == 0.0
    fb = parse_line(samples.FALLBACK)
    assert (fb.kind, fb.vmid, fb.chain, fb.policy) == ("packet", 0, "-", "DROP")
    assert fb.fields["PROTO"] == "ICMP" and fb.fields["ID"] == "1" and fb.l4["ID"] == "7"
    assert parse_line("garbage").kind == "other"
    # A vmid over 2^31 comes out negative, as pvefw-logger prints it.
    assert parse_line(samples.STATUS.replace("0 5 -", "-2 5 -", 1)).vmid == -2


@pytest.mark.parametrize(("stamp", "zone"), [
    ("31/Feb/2026:00:00:00", "+0000"), ("04/Dez/2026:00:00:00", "+0000"),
    ("04/Dec/2026:00:00:00", "UTC"), ("4/Dec/2026:00:00:00", "+0000"),
])
def test_bad_times_are_none(stamp: str, zone: str) -> None:
    assert parse_log_time(stamp, zone) is None


def test_negative_zone() -> None:
    t = parse_log_time("04/Dec/2026:10:00:00", "-0530")
    assert t is not None and t.timestamp() == datetime(
        2026, 12, 4, 15, 30, tzinfo=UTC).timestamp()


def test_rotated_files_oldest_first_numerically(tmp_path: Path) -> None:
    log = tmp_path / "pve-firewall.log"
    for name in ("pve-firewall.log", "pve-firewall.log.1", "pve-firewall.log.2.gz",
                 "pve-firewall.log.10.gz", "pve-firewall.log.old", "pve-firewall.logx.1",
                 "other.log.1"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in log_files(log, rotated=True)] == [
        "pve-firewall.log.10.gz", "pve-firewall.log.2.gz", "pve-firewall.log.1",
        "pve-firewall.log"]
    assert log_files(log, rotated=False) == [log]


def test_read_lines_reports_a_damaged_gzip_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "fw.log.2.gz").write_bytes(b"not gzip at all")
    with gzip.open(tmp_path / "fw.log.1.gz", "wb") as fh:
        fh.write((samples.STATUS + "\n").encode())
    (tmp_path / "fw.log").write_text(samples.HOST_TCP + "\n")
    warnings: list[str] = []
    got = list(read_lines(log_files(tmp_path / "fw.log", True), warnings.append))
    assert got == [samples.STATUS, samples.HOST_TCP]
    assert len(warnings) == 1 and "fw.log.2.gz" in warnings[0]


def test_missing_current_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogReadError, match=r"fw\.log"):
        list(read_lines([tmp_path / "fw.log"], lambda _: None))


def test_query_vmid_is_the_leading_number_only() -> None:
    lines = [samples.HOST_TCP, samples.GUEST_UDP, samples.GUEST_ICMP6, samples.CONNTRACK]
    assert [x.text for x in select(lines, Query(vmid=100))] == [samples.GUEST_UDP]
    assert [x.text for x in select(lines, Query(vmid=0))] == [samples.HOST_TCP]
    assert len(list(select(lines, Query()))) == 4


def test_query_window_treats_lines_without_time_as_epoch() -> None:
    lines = [samples.HOST_TCP, samples.GUEST_UDP, samples.CONNTRACK]
    midnight = datetime(2026, 12, 4, tzinfo=UTC).timestamp()
    assert [x.text for x in select(lines, Query(since=midnight))] == [samples.GUEST_UDP]
    # Inclusive bounds, as the API's comparisons.
    assert [x.text for x in select(lines, Query(until=midnight))] == [
        samples.HOST_TCP, samples.GUEST_UDP, samples.CONNTRACK]
    assert [x.text for x in select(lines, Query(until=midnight - 1))] == [
        samples.HOST_TCP, samples.CONNTRACK]


def test_time_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time
    time.tzset()
    try:
        now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC).timestamp()
        assert parse_time_arg("1764800000") == 1764800000.0
        assert parse_time_arg("-2h", now) == now - 7200
        assert parse_time_arg("-1d", now) == now - 86400
        assert parse_time_arg("now", now) == now
        assert parse_time_arg("today", now) == now - 15 * 3600
        assert parse_time_arg("yesterday", now) == now - 39 * 3600
        assert parse_time_arg("2026-12-04 15:00") == now
        assert parse_time_arg("2026-12-04T16:00+01:00") == now
        with pytest.raises(ValueError, match="not a time"):
            parse_time_arg("last tuesday")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
