"""The journal sink: datagram encoding, when the journal is chosen, and a real socket."""

from __future__ import annotations

import io
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from proxmox_fw import log
from proxmox_fw.service import journal


def parse_datagram(data: bytes) -> dict[str, str]:
    """The reverse of journald's native format (both the text and the binary form)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            fields[name.decode()] = value.decode()
            pos = newline + 1
        else:
            (size,) = struct.unpack("<Q", data[newline + 1:newline + 9])
            start = newline + 9
            fields[line.decode()] = data[start:start + size].decode()
            assert data[start + size:start + size + 1] == b"\n"
            pos = start + size + 1
    return fields


def test_multiline_values_use_the_binary_form() -> None:
    data = journal.encode_fields({"MESSAGE": "two\nlines", "PRIORITY": "4"})
    assert data == b"MESSAGE\n" + struct.pack("<Q", 9) + b"two\nlines\nPRIORITY=4\n"
    assert parse_datagram(data) == {"MESSAGE": "two\nlines", "PRIORITY": "4"}


def test_field_names_are_made_valid() -> None:
    assert journal.field_name("elapsed_ms") == "ELAPSED_MS"
    assert journal.field_name("_private") == "PRIVATE"
    assert journal.field_name("9lives") == "PFW_9LIVES"
    assert journal.field_name("a-b.c") == "A_B_C"


@pytest.fixture
def journal_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield path, sock
    finally:
        sock.close()


def test_journal_wanted(journal_socket: tuple[str, socket.socket], tmp_path: Path) -> None:
    path, _sock = journal_socket
    assert journal.journal_wanted({"INVOCATION_ID": "abc"}, path)
    assert not journal.journal_wanted({}, path)
    assert not journal.journal_wanted({"INVOCATION_ID": "abc"}, str(tmp_path / "missing"))
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal.journal_wanted(env, path, stderr=stream)
        assert not journal.journal_wanted({"JOURNAL_STREAM": "1:2"}, path, stderr=stream)


def test_structlog_events_reach_the_socket(journal_socket: tuple[str, socket.socket]) -> None:
    path, sock = journal_socket
    try:
        target = journal.setup_daemon_logging(env={"INVOCATION_ID": "x", "PVE_LOG": "info"},
                                              socket_path=path)
        assert target == "journal"
        logger = log.get()
        logger.debug("not at info level")
        logger.warning("cannot read file", where="/etc/pve/firewall/cluster.fw:3")
        logger.info("firewall update time: 1.5ms", chains_changed=2)
        first = parse_datagram(sock.recv(65536))
        second = parse_datagram(sock.recv(65536))
    finally:
        log.setup()
    assert first == {
        "MESSAGE": "/etc/pve/firewall/cluster.fw:3: cannot read file",
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "proxmox-firewall",
    }
    assert second["MESSAGE"] == "firewall update time: 1.5ms chains_changed=2"
    assert second["PRIORITY"] == "6"
    assert second["CHAINS_CHANGED"] == "2"


def test_a_dead_socket_falls_back_to_stderr(tmp_path: Path) -> None:
    stream = io.StringIO()
    logger = journal.JournalLogger(str(tmp_path / "nobody-listens"), fallback=stream)
    logger.error(fields={"MESSAGE": "kernel refused", "PRIORITY": "3"})
    assert stream.getvalue() == "ERROR: kernel refused\n"


def test_without_systemd_logs_go_to_stderr() -> None:
    try:
        assert journal.setup_daemon_logging(env={}, socket_path="/nonexistent") == "stderr"
        assert structlog.get_config()["logger_factory"].__class__ is structlog.PrintLoggerFactory
    finally:
        log.setup()
