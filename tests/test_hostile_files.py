"""Hostile file names and links: ``<attach>`` names that are no file name (``..``), not
UTF-8, or too long give a DataError that names the problem, on insert and on fetch (never
a raw OSError); a symbolic link inside a file store that leads out of it is not followed."""

from __future__ import annotations

import os

import pytest

import dj_dagster as dj
from dj_dagster.stores import Store, StoreError


@pytest.fixture
def attach_table(schema, tmp_path, monkeypatch):
    monkeypatch.setitem(dj.config, "download_path", str(tmp_path / "downloads"))

    @schema
    class Document(dj.Manual):
        definition = """
        doc_id : int32
        ---
        doc : <attach>
        """

    return Document


def test_attach_names_that_are_no_file_names(attach_table, tmp_path):
    long_name = tmp_path / ("x" * 300)
    for value, fragment in [("..", "not a file name"), (str(tmp_path / ".."), "not a file name"),
                            (str(long_name), "300 bytes long"), (str(tmp_path), "folders"),
                            (str(tmp_path / "missing.txt"), "not found")]:
        with pytest.raises(dj.DataJointError, match=fragment):
            attach_table.insert1({"doc_id": 1, "doc": value})
    assert len(attach_table()) == 0


def test_attach_name_that_is_not_utf8(attach_table, tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")  # Latin-1, as an old system may name it
    with open(raw, "wb") as f:
        f.write(b"data")
    with pytest.raises(dj.DataJointError, match="not valid UTF-8"):
        attach_table.insert1({"doc_id": 1, "doc": os.fsdecode(raw)})


@pytest.mark.parametrize("stored, fragment", [
    (b"..\x00secret", "not a file name"),
    (b"../../etc/..\x00secret", "not a file name"),
    (b"caf\xe9.txt\x00data", "not valid UTF-8"),
    (b"y" * 300 + b"\x00data", "300 bytes long"),
    (b"no separator", "no file name"),
])
def test_fetching_hostile_stored_names(attach_table, backend, tmp_path, stored, fragment):
    conn = attach_table.connection  # a valid row first, then its stored value replaced by hostile bytes
    path = tmp_path / "ok.txt"
    path.write_bytes(b"fine")
    attach_table.insert1({"doc_id": 1, "doc": str(path)})
    fetched = (attach_table & {"doc_id": 1}).fetch1("doc")
    assert open(fetched, "rb").read() == b"fine"
    mark = "?" if backend == "sqlite" else "%s"
    with conn.transaction() as tx:  # the raw bytes, past the codec
        name = conn.adapter._qualified(tx, attach_table.database, attach_table.table_name)
        tx.exec_driver_sql(f"UPDATE {name} SET doc = {mark} WHERE doc_id = 1", (stored,))
    with pytest.raises(dj.DataJointError, match=fragment):
        (attach_table & {"doc_id": 1}).fetch1("doc")


def test_long_attachment_names_that_collide_still_fit(attach_table, tmp_path):
    name = "n" * 251 + ".txt"  # 255 bytes: the longest name there is
    for i, content in enumerate([b"one", b"two"]):
        folder = tmp_path / f"src{i}"
        folder.mkdir()
        (folder / name).write_bytes(content)
        attach_table.insert1({"doc_id": i, "doc": str(folder / name)})
    paths = [(attach_table & {"doc_id": i}).fetch1("doc") for i in range(2)]
    assert [open(p, "rb").read() for p in paths] == [b"one", b"two"]
    assert all(len(os.path.basename(p).encode()) <= 255 for p in paths)


def test_links_out_of_a_file_store_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"private")
    root = tmp_path / "store"
    store = Store("local", {"protocol": "file", "location": str(root)})
    store.put("inside/a", b"A")
    os.symlink(outside, root / "escape")  # a folder link leading out
    os.symlink(outside / "secret", root / "inside" / "leak")  # a file link leading out
    os.symlink(root / "inside", root / "alias")  # a link that stays inside is fine
    for action in (lambda: store.get("escape/secret"), lambda: store.get("inside/leak"),
                   lambda: store.put("escape/new", b"x"), lambda: store.remove("escape/secret"),
                   lambda: store.size("escape/secret"), lambda: store.get_many(["inside/a", "escape/secret"])):
        with pytest.raises(StoreError, match="outside the store"):
            action()
    assert (outside / "secret").read_bytes() == b"private" and not (outside / "new").exists()
    assert store.get("alias/a") == b"A" and store.get("inside/a") == b"A"


def test_a_store_reached_through_a_link_works(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "linked")
    store = Store("local", {"protocol": "file", "location": str(tmp_path / "linked")})
    store.put("a/b", b"B")
    assert store.get("a/b") == b"B" and (real / "a" / "b").read_bytes() == b"B"
