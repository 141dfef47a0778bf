"""Property-based fuzzing of every reader and of compile (issue 10): one line of one
file of the seed tree replaced by a mutation of a seed line (bytes, separators, Unicode
digits, long numbers, NUL, BOM, non-UTF-8 bytes), checked against the properties of
:mod:`tests.fuzz.fuzzlib`. Every input that ever failed is kept in ``regressions/`` and
replayed as a plain test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxmox_fw.nft.features import probe_features
from tests.fuzz.fuzzlib import FILES, REGRESSIONS, KernelCheck, Mutation, check_mutation, seed_lines

SPECIAL = [b"\x00", b"\xef\xbb\xbf", b"\v", b"\f", b"\r", b"\x1c", b"\xc2\x85", b"\xe2\x80\xa8",
           b"\xc2\xb2", b"\xd9\xa3", b"9" * 300, b"9" * 5000, b"-1", b"0", b"!", b",", b":",
           b"/", b"+", b"=", b"\t", b" ", b"\xff", b"\xc3\xa9", b"#", b"[", b"]", b"{", b"}",
           b'"', b"-", b"4294967296", b"::", b"/33", b"/129"]  # fmt: skip


@st.composite
def mutations(draw: st.DrawFn) -> Mutation:
    file = draw(st.sampled_from(FILES))
    lines = seed_lines(file)
    index = draw(st.integers(0, len(lines) - 1))
    base = draw(st.sampled_from([lines[index], *lines])) if lines else b""
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(base)))
        op = draw(st.sampled_from(["insert", "replace", "cut", "bytes"]))
        if op == "insert":
            base = base[:pos] + draw(st.sampled_from(SPECIAL)) + base[pos:]
        elif op == "replace":
            end = draw(st.integers(pos, len(base)))
            base = base[:pos] + draw(st.sampled_from(SPECIAL)) + base[end:]
        elif op == "cut":
            base = base[:pos]
        else:
            base = base[:pos] + draw(st.binary(max_size=4)) + base[pos:]
    return Mutation(file, index, base)


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCheck | None]:
    if os.geteuid() != 0:
        yield None
        return
    check = KernelCheck(probe_features())
    try:
        yield check
    finally:
        check.close()


@given(m=mutations())
def test_mutated_tree(m: Mutation, kernel: KernelCheck | None, tmp_path: Path) -> None:
    check_mutation(m, tmp_path, kernel)


def _regressions() -> list[Path]:
    return sorted(REGRESSIONS.glob("*.json"))


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.stem)
def test_regression(path: Path, kernel: KernelCheck | None, tmp_path: Path) -> None:
    check_mutation(Mutation.from_json(json.loads(path.read_text())), tmp_path, kernel)
