"""The embedded PostgreSQL trusts local connections, so where it listens is what guards it: a
Unix socket only (no TCP port), in a directory only its owner can enter."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from feedback.embedded import embedded_postgres

pytestmark = pytest.mark.slow


async def test_the_embedded_server_listens_only_on_a_socket_in_a_private_directory(
    tmp_path: Path,
) -> None:
    with embedded_postgres(tmp_path) as url:
        socket_dir = Path(parse_qs(urlsplit(url).query)["host"][0])
        conn = await asyncpg.connect(url)
        try:
            listen = await conn.fetchval("SHOW listen_addresses")
            directories = await conn.fetchval("SHOW unix_socket_directories")
        finally:
            await conn.close()
    assert listen == ""  # no TCP port at all
    assert [Path(d.strip()) for d in directories.split(",")] == [socket_dir]  # not /tmp too
    assert socket_dir.is_relative_to(tmp_path / "postgres")
    mode = stat.S_IMODE((tmp_path / "postgres").stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)  # only the server's owner may enter
