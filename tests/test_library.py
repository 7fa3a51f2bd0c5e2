"""The SQLite study library: import, no duplicates on re-import, migrations, thumbnails, failures."""
import io
import shutil
import sqlite3

import numpy as np
import pytest
import sqlite_utils
from PIL import Image

from core.library import Library
from core.library.migrations import MIGRATIONS, applied


def test_import_bundled_ct_then_reimport_does_not_duplicate(tmp_path, bundled_ct):
    lib = Library(tmp_path / "lib.db")
    seen = []
    rep = lib.import_path(bundled_ct, progress=lambda f, m: seen.append(f))
    assert len(rep.new_series) == 1 and not rep.problems
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    studies = lib.studies()
    assert len(studies) == 1 and studies[0]["n_series"] == 1 and studies[0]["modalities"] == "CT"
    series = lib.series(studies[0]["id"])
    assert series[0]["n_images"] == 20 and series[0]["has_thumbnail"]
    assert len(lib.files(series[0]["series_uid"])) == 20

    rep2 = lib.import_path(bundled_ct)
    assert rep2.new_series == [] and rep2.existing_series == rep.new_series
    assert len(lib.studies()) == 1 and lib.db["files"].count == 20

    thumb = Image.open(io.BytesIO(lib.thumbnail(rep.new_series[0])))
    assert max(thumb.size) <= 128 and np.asarray(thumb).std() > 10  # a real picture, not a flat square

    vol = lib.load(rep.new_series[0])
    assert vol.shape == (512, 512, 20) and vol.modality == "CT"


def test_library_persists_and_reopens(tmp_path, bundled_ct):
    path = tmp_path / "lib.db"
    Library(path).import_path(bundled_ct)
    again = Library(path)
    assert len(again.studies()) == 1
    assert applied(again.db) == [name for name, _ in MIGRATIONS]


def test_default_location_follows_env(spinemed_home):
    lib = Library()
    assert lib.path == spinemed_home / "library.db" and lib.path.exists()


def test_bad_folder_reports_problem_and_keeps_library(tmp_path, bundled_ct):
    lib = Library(tmp_path / "lib.db")
    lib.import_path(bundled_ct)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    rep = lib.import_path(empty)
    assert not rep.new_series and rep.problems
    assert "no images" in str(rep.problems[0]) and str(empty) in str(rep.problems[0])
    missing = lib.import_path(tmp_path / "nope")
    assert "does not exist" in str(missing.problems[0])
    assert len(lib.studies()) == 1


def test_disk_full_during_import_keeps_existing_studies(tmp_path, bundled_ct):
    """A database that cannot grow (max_page_count) behaves like a full disk: clear problem, nothing lost."""
    path = tmp_path / "lib.db"
    lib = Library(path)
    nifti_dir = tmp_path / "nii"
    nifti_dir.mkdir()
    import nibabel as nib
    for n in range(3):
        nib.save(nib.Nifti1Image(np.random.default_rng(n).integers(0, 1000, (40, 40, 30)).astype(np.int16), np.eye(4)),
                 nifti_dir / f"mr{n}.nii.gz")
    lib.import_path(nifti_dir / "mr0.nii.gz")
    lib.db.execute("PRAGMA journal_mode = DELETE")  # max_page_count is enforced on the main file, not a WAL
    lib.db.execute("VACUUM")  # no free pages left to absorb the next insert
    pages = lib.db.execute("PRAGMA page_count").fetchone()[0]
    lib.db.execute(f"PRAGMA max_page_count = {pages}")
    rep = lib.import_path(bundled_ct)
    assert rep.problems and "full" in str(rep.problems[0])
    lib.db.execute("PRAGMA max_page_count = 1073741823")
    assert len(lib.studies()) == 1 and lib.db["files"].count == 1
    check = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"


def test_migrations_run_once_and_are_named(tmp_path):
    db = sqlite_utils.Database(tmp_path / "x.db")
    from core.library.migrations import migrate
    assert migrate(db) == [name for name, _ in MIGRATIONS]
    assert migrate(db) == []
    assert {"studies", "series", "files", "_migrations"} <= set(db.table_names())


def test_remove_series_forgets_empty_study(tmp_path, bundled_ct):
    lib = Library(tmp_path / "lib.db")
    uid = lib.import_path(bundled_ct).new_series[0]
    lib.remove_series(uid)
    assert lib.studies() == [] and lib.db["files"].count == 0
    assert bundled_ct.is_dir() and len(list(bundled_ct.iterdir())) == 20


def test_zip_import_extracts_into_library_home(tmp_path, bundled_ct, spinemed_home):
    archive = shutil.make_archive(str(tmp_path / "study"), "zip", bundled_ct)
    lib = Library()
    rep = lib.import_path(archive)
    assert len(rep.new_series) == 1
    files = lib.files(rep.new_series[0])
    assert files and all(str(f).startswith(str(spinemed_home)) for f in files)
    with pytest.raises(KeyError):
        lib.source("1.2.3.does.not.exist")
