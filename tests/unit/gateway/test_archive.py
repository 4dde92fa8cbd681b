"""The export archive's format: what ArchiveWriter streams is a tar that `tar` and Python read,
and `verify` refuses a truncated, tampered, extended or foreign archive."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.gateway.archive import ROOT, ArchiveError, ArchiveWriter, members, verify

DOCS = {"a" * 64: b"first document\n" * 100, "b" * 64: b"x" * 512, "c" * 64: b""}


async def _pieces(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _archive() -> bytes:
    writer = ArchiveWriter()
    out = bytearray()
    for atom_id, data in DOCS.items():
        async for part in writer.data(
            f"atoms/{atom_id}.json", json.dumps({"id": atom_id}).encode()
        ):
            out += part
        async for part in writer.member(f"atoms/{atom_id}", len(data), _pieces(data)):
            out += part
    out += writer.finish({"tenant_id": "acme", "documents": len(DOCS)})
    return bytes(out)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "export.tar"
    path.write_bytes(asyncio.run(_archive()))
    return path


def test_the_archive_is_a_tar_with_a_manifest_of_every_member(archive: Path) -> None:
    manifest = verify(archive)
    assert (manifest["tenant_id"], manifest["documents"]) == ("acme", 3)
    for atom_id, data in DOCS.items():
        assert manifest["files"][f"atoms/{atom_id}"] == {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    read = {name: handle.read() for name, handle, _ in members(archive)}
    assert read[f"atoms/{'a' * 64}"] == DOCS["a" * 64]
    listed = subprocess.run(["tar", "tf", str(archive)], capture_output=True, text=True, check=True)
    assert f"{ROOT}/manifest.json" in listed.stdout.splitlines()


def test_a_truncated_archive_is_refused(archive: Path) -> None:
    whole = archive.read_bytes()
    for cut in (len(whole) - 2048, len(whole) // 2, 700):
        archive.write_bytes(whole[:cut])
        with pytest.raises(ArchiveError, match=r"truncated|not a complete"):
            verify(archive)


def test_a_tampered_member_is_refused_by_name(archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b"first document", b"first documenT", 1))
    with pytest.raises(ArchiveError, match=f"atoms/{'a' * 64} differs from the manifest"):
        verify(archive)


def test_a_member_missing_or_added_is_refused(archive: Path, tmp_path: Path) -> None:
    manifest = verify(archive)
    manifest["files"]["atoms/" + "d" * 64] = {"size": 1, "sha256": "0" * 64}
    del manifest["files"][f"atoms/{'c' * 64}"]
    edited = tmp_path / "edited.tar"
    with tarfile.open(archive) as source, tarfile.open(edited, "w") as out:
        for member in source:
            handle = source.extractfile(member)
            if member.name.endswith("manifest.json"):
                data = json.dumps(manifest).encode()
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member, handle)
    with pytest.raises(ArchiveError, match=r"missing atoms/d+.*not in the manifest: atoms/c+"):
        verify(edited)


def test_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an archive")
    with pytest.raises(ArchiveError, match="not a complete tar archive"):
        verify(path)
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as out:
        out.add(path, arcname="notes.txt")
    with pytest.raises(ArchiveError, match=r"unexpected member 'notes\.txt'") as caught:
        verify(foreign)
    assert "JSON" not in str(caught.value)


def test_a_member_shorter_than_announced_fails_the_stream() -> None:
    async def short() -> None:
        async for _ in ArchiveWriter().member("atoms/x", 10, _pieces(b"12345")):
            pass

    with pytest.raises(ArchiveError, match="5 bytes where 10 were announced"):
        asyncio.run(short())
