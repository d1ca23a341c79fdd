"""I4's evidence scan: any Luhn-valid card-like number in clear, in any evidence file, besides the known test
cards; masked forms, hex strings and glued protocol fields are not card numbers; SQLite read cell by cell."""

import sqlite3

from harness.acceptance.oracle import scan_evidence

UNKNOWN = "5105105105105100"          # Luhn-valid, not one of harness.core.cards
NOT_LUHN = "5105105105105101"


def found(folder, **kw):
    return {p.name: pans for p, pans in scan_evidence(folder, **kw)}


def test_a_number_in_clear_as_printed_in_groups_in_text_and_in_binary_files(tmp_path):
    (tmp_path / "a.txt").write_text("card 5105 1051 0510 5100\n")
    (tmp_path / "b.json").write_text('{"pan": "5105-1051-0510-5100"}')
    (tmp_path / "printer-stream.bin").write_bytes(b"\x1b@\x00Card " + UNKNOWN.encode() + b"\n\x1dV\x00")
    (tmp_path / "ok.txt").write_text(f"card 510510******5100, ref {NOT_LUHN}, sum 123456789012")
    assert found(tmp_path) == {n: ["510510******5100"] for n in ("a.txt", "b.json", "printer-stream.bin")}


def test_masked_numbers_hex_strings_and_images_are_not_numbers_in_clear(tmp_path):
    (tmp_path / "ledger.json").write_text('{"raw": "0200C0800016411111******11110000000000000488", '
                                          f'"digest": "c{UNKNOWN}ae2c07d"}}')
    (tmp_path / "receipt.png").write_bytes(b"\x89PNG\r\n" + UNKNOWN.encode())
    assert found(tmp_path) == {}


def test_a_capture_is_searched_for_the_known_cards_in_ascii_and_bcd_only(tmp_path):
    (tmp_path / "a.pcapng").write_bytes(b"\x00\x01164111111111111111000000" + UNKNOWN.encode() + b"\x00")
    (tmp_path / "b.pcapng").write_bytes(b"\x00\x06\x01" + bytes.fromhex("5555555555554444") + b"\x00")
    assert found(tmp_path) == {"a.pcapng": ["411111******1111"], "b.pcapng": ["555555******4444"]}


def test_sqlite_is_read_cell_by_cell_and_left_untouched(tmp_path):
    path = tmp_path / "till-journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (a TEXT, b TEXT, note TEXT)")
    db.execute("INSERT INTO t VALUES ('510510510', '5105100', 'fine')")        # glued in the file: one run
    db.commit()
    db.close()
    assert found(tmp_path) == {}
    db = sqlite3.connect(path)
    db.execute("INSERT INTO t VALUES ('x', 'y', ?)", (f"paid with {UNKNOWN}",))
    db.commit()
    db.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert found(tmp_path) == {"till-journal.sqlite": ["510510******5100"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == names                 # no -wal / -shm left beside it


def test_a_live_wal_database_is_read_with_its_wal(tmp_path):
    path = tmp_path / "host-ledger.sqlite"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE m (note TEXT)")
    writer.execute("INSERT INTO m VALUES (?)", (f"pan {UNKNOWN}",))
    writer.commit()
    try:
        assert (tmp_path / "host-ledger.sqlite-wal").exists()
        assert found(tmp_path)["host-ledger.sqlite"] == ["510510******5100"]
    finally:
        writer.close()


def test_only_files_written_since_a_time(tmp_path):
    import os

    (tmp_path / "old.log").write_text(UNKNOWN)
    os.utime(tmp_path / "old.log", (1000.0, 1000.0))
    (tmp_path / "new.log").write_text(UNKNOWN)
    assert list(found(tmp_path, since=2000.0)) == ["new.log"]


def test_a_wal_left_without_its_shm_gets_no_shm_made_beside_it(tmp_path):
    import shutil

    live = tmp_path / "live"
    live.mkdir()
    writer = sqlite3.connect(live / "x.sqlite")
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE m (note TEXT)")
    writer.execute("INSERT INTO m VALUES ('pan 4111111111111111')")
    writer.commit()
    left = tmp_path / "left"
    left.mkdir()
    for name in ("x.sqlite", "x.sqlite-wal"):
        shutil.copy(live / name, left / name)
    writer.close()
    assert found(left) == {"x.sqlite-wal": ["411111******1111"]}          # the known card, in the raw WAL
    assert sorted(p.name for p in left.iterdir()) == ["x.sqlite", "x.sqlite-wal"]


def test_a_run_of_zeros_is_no_card_number(tmp_path):
    """A totals field of zeros passes Luhn, in a text file or a SQLite cell; no card number starts with 0."""
    (tmp_path / "totals.txt").write_text("end of day totals 0000000000000000 count 0\n")
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("CREATE TABLE batches (totals TEXT)")
    db.execute("INSERT INTO batches VALUES ('0000000000000000000')")
    db.commit()
    db.close()
    assert scan_evidence(tmp_path) == []
    (tmp_path / "clear.txt").write_text("card 5555555555554444\n")
    assert [p.name for p, _ in scan_evidence(tmp_path)] == ["clear.txt"]
