"""core/stored_zip.py: archives zipfile and Info-ZIP read back, ZIP64 past their limits."""

import io
import shutil
import struct
import subprocess
import zipfile

import pytest

from core.stored_zip import StoredZipWriter


def test_members_read_back_with_their_names_bytes_and_checksums(tmp_path):
    members = {"cat/1.jpg": b"\xff\xd8jpeg bytes", "chat/ü-2.png": b"\x89PNG" * 1000, "e.txt": b""}
    path = tmp_path / "out.zip"
    with open(path, "wb") as out, StoredZipWriter(out) as archive:
        for name, data in members.items():
            archive.add(name, data)
    with zipfile.ZipFile(path) as read:
        assert read.testzip() is None
        assert {info.filename: read.read(info) for info in read.infolist()} == members
        assert {info.compress_type for info in read.infolist()} == {zipfile.ZIP_STORED}
    if shutil.which("unzip"):  # Info-ZIP, where installed
        check = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
        assert check.returncode == 0 and "No errors" in check.stdout


def test_more_than_65535_members_get_the_zip64_end_records():
    out = io.BytesIO()
    with StoredZipWriter(out) as archive:
        for i in range(70_000):
            archive.add(f"{i % 10}/{i}.png", bytes([i % 256]))
    data = out.getvalue()
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]
    with zipfile.ZipFile(out) as read:
        names = read.namelist()
        assert len(names) == 70_000 and read.read("9/69999.png") == bytes([69999 % 256])


def test_a_member_past_4_gib_is_found_through_its_zip64_offset():
    """Writing 4 GiB in a test is too slow: the writer is told it has already written that
    much, and the central entry must then point at the member through the ZIP64 field."""
    archive = StoredZipWriter(io.BytesIO())
    archive.offset = (1 << 32) + 123
    archive.add("big/1.png", b"png")
    entry = archive.central[0]
    fields = struct.unpack("<IHHHHHHIIIHHHHHII", entry[:46])
    assert fields[-1] == 0xFFFFFFFF and fields[11] == 12  # offset in the extra field
    tag, size, offset = struct.unpack("<HHQ", entry[46 + len("big/1.png") :])
    assert (tag, size, offset) == (1, 8, (1 << 32) + 123)


def test_a_member_of_4_gib_is_refused():
    class Huge(bytes):
        def __len__(self):
            return 1 << 32

    with pytest.raises(ValueError, match="4 GiB"):
        StoredZipWriter(io.BytesIO()).add("x", Huge())
