"""The spine knowledge base: every document is well-formed and covers the required topics, and search behaves."""
from __future__ import annotations

import re
import shutil
import sqlite3

import pytest

from core.knowledge import KnowledgeError, KnowledgeIndex, chunk, fts_query, load_documents, parse_document
from core.knowledge.documents import REQUIRED_KEYS, default_folder, parse_front_matter
from core.paths import RESOURCES
from core.spine.anatomy import VALID_LEVELS, find_levels, normalise_level, related_levels

FOLDER = RESOURCES / "knowledge"
REQUIRED_CLASSIFICATIONS = (
    "Pfirrmann", "Modic", "Meyerding", "Fardon", "Schizas", "Cobb", "Genant", "AO Spine", "SINS", "Bilsky",
    "Castellvi", "TLICS",
)
LUMBAR = {f"L{i}" for i in range(1, 6)} | {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}
CERVICAL = {f"C{i}" for i in range(1, 8)} | {"C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1"}


@pytest.fixture(scope="module")
def docs():
    return load_documents()


@pytest.fixture(scope="module")
def index():
    ix = KnowledgeIndex()  # in memory, default folder
    assert ix.build() is True
    yield ix
    ix.close()


# -- the documents -----------------------------------------------------------------------------------------------
def test_default_folder_is_resources_knowledge():
    assert default_folder() == FOLDER and FOLDER.is_dir()


def test_at_least_42_documents_with_unique_ids_equal_to_stems(docs):
    assert len(docs) >= 42
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids))
    for d in docs:
        assert d.id == d.path.stem
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", d.id)


def test_front_matter_has_exactly_the_required_keys():
    for path in sorted(FOLDER.glob("*.md")):
        fields, _, _ = parse_front_matter(path.read_text(encoding="utf-8"), path)
        assert set(fields) == set(REQUIRED_KEYS), path.name


def test_every_document_is_structured_cited_and_tagged(docs):
    for d in docs:
        sections = [ln for ln in d.body.splitlines() if ln.startswith("## ")]
        assert len(sections) >= 2, d.id
        assert len(chunk(d)) >= 2, d.id
        assert d.title and d.topics, d.id
        assert d.references and all(len(r) > 15 for r in d.references), d.id
        assert d.levels and set(d.levels) <= VALID_LEVELS, (d.id, set(d.levels) - VALID_LEVELS)
        assert d.modalities and set(d.modalities) <= {"xray", "ct", "mri"}, d.id
        assert isinstance(d.reviewed, bool)


def test_documents_are_concise_and_end_with_the_decision_support_note(docs):
    for d in docs:
        words = len(d.body.split())
        assert 200 <= words <= 700, (d.id, words)
        last = [ln for ln in d.body.splitlines() if ln.strip()][-1]
        assert "Decision support note" in last, d.id
        assert "judgement" in last, d.id


def test_no_document_claims_clinical_review_yet(docs):
    # Honesty: nothing has been reviewed by a clinician; flip a document to true only after a real review.
    assert not [d.id for d in docs if d.reviewed]


@pytest.mark.parametrize("name", REQUIRED_CLASSIFICATIONS)
def test_required_classification_is_cited(docs, name):
    refs = " | ".join(r for d in docs for r in d.references)
    assert name.lower() in refs.lower(), f"no reference mentions {name}"


def test_required_subjects_have_a_document(docs):
    ids = {d.id for d in docs}
    for needle in ("anatomy-craniocervical", "anatomy-thoracic", "anatomy-lumbar", "anatomy-sacrum",
                   "vertebral-counting", "castellvi", "imaging-mri", "imaging-ct", "imaging-radiography",
                   "pfirrmann", "modic", "herniation-nomenclature", "central-canal-stenosis", "lateral-recess",
                   "foraminal-stenosis", "facet", "spondylolisthesis", "spondylolysis", "scoliosis",
                   "sagittal-balance", "thoracolumbar-fractures", "tlics", "osteoporotic", "subaxial", "odontoid",
                   "spondylodiscitis", "epidural-abscess", "metastases", "sins", "bilsky", "ankylosing", "dish",
                   "rheumatoid", "myelopathy", "cauda-equina", "conservative-care", "surgery-lumbar-decompression",
                   "interbody-fusion", "surgery-anterior-cervical", "surgery-posterior-cervical",
                   "vertebral-augmentation", "osteotomies", "wrong-level", "postoperative", "structured",
                   "measurement-definitions"):
        assert any(needle in i for i in ids), needle


# -- strict parsing ----------------------------------------------------------------------------------------------
GOOD = """---
id: {id}
title: Test document
topics: [testing, parser]
levels: [L4-L5, L5]
modalities: [mri]
references: ["Someone A et al., Journal 2000 (a thing, with commas)"]
reviewed: false
---

## First
Alpha text.

## Second
Beta text.
"""


def _write(folder, stem, text):
    path = folder / f"{stem}.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_parser_reads_lists_with_quoted_commas_and_chunks_with_line_numbers(tmp_path):
    path = _write(tmp_path, "good-doc", GOOD.format(id="good-doc"))
    doc = parse_document(path)
    assert doc.references == ("Someone A et al., Journal 2000 (a thing, with commas)",)
    assert doc.levels == ("L4-L5", "L5") and doc.reviewed is False
    passages = chunk(doc)
    assert [p.id for p in passages] == ["good-doc#first", "good-doc#second"]
    assert passages[0].title == "Test document \u2014 First"
    lines = path.read_text().splitlines()
    assert lines[passages[1].line - 1] == "## Second"
    assert passages[1].text == "Beta text." and passages[1].path == path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("modalities: [mri]\n", ""), "missing front-matter key(s): modalities"),
        (lambda t: t.replace("id: bad-doc", "id: Bad_Doc"), "not kebab-case"),
        (lambda t: t.replace("id: bad-doc", "id: other-doc"), "must equal the file name stem"),
        (lambda t: t.replace("[L4-L5, L5]", "[L4-L6]"), "invalid or empty levels"),
        (lambda t: t.replace("[mri]", "[pet]"), "invalid modalities"),
        (lambda t: t.replace('(a thing, with commas)"]', "(unterminated]"), "unterminated quoted item"),
        (lambda t: t.replace("reviewed: false", "reviewed: maybe"), "reviewed must be true or false"),
        (lambda t: t.replace("reviewed: false", "reviewed: false\nauthor: me"), "unknown key"),
        (lambda t: t.replace("topics: [testing, parser]", "topics: testing"), "expected a [list]"),
        (lambda t: t.replace("---\n\n## First", "\n## First"), "not closed"),
    ],
)
def test_parser_errors_name_the_file(tmp_path, mutate, message):
    path = _write(tmp_path, "bad-doc", mutate(GOOD.format(id="bad-doc")))
    with pytest.raises(KnowledgeError) as err:
        parse_document(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_loader_sorts_rejects_duplicates_and_missing_folder(tmp_path, monkeypatch):
    one = _write(tmp_path, "one", GOOD.format(id="one"))
    _write(tmp_path, "two", GOOD.format(id="two"))
    assert [d.id for d in load_documents(tmp_path)] == ["one", "two"]
    with pytest.raises(KnowledgeError, match="knowledge folder not found"):
        load_documents(tmp_path / "missing")
    # id == stem makes duplicates impossible in one folder; the loader still guards against them.
    from core.knowledge import documents

    monkeypatch.setattr(documents, "document_files", lambda folder=None: [one, one])
    with pytest.raises(KnowledgeError, match="duplicate id 'one'"):
        load_documents(tmp_path)


# -- levels ------------------------------------------------------------------------------------------------------
def test_level_names_normalise_and_have_neighbours():
    assert normalise_level("l4/5") == "L4-L5"
    assert normalise_level("L5S1") == "L5-S1"
    assert normalise_level("c7-t1") == "C7-T1"
    assert normalise_level("L3-L5") is None and normalise_level("L6") is None
    assert related_levels("L4-L5") == {"L4-L5", "L4", "L5"}
    assert related_levels("L4") == {"L4", "L3-L4", "L4-L5"}
    assert find_levels("T2-weighted signal at C5/6 and L5-S1") == ["C5-C6", "L5-S1"]


# -- search ------------------------------------------------------------------------------------------------------
def test_stenosis_question_at_l4_l5_finds_lumbar_stenosis_passages(index):
    hits = index.search("how severe is the stenosis at L4-L5")
    assert hits
    assert any("stenosis" in h.passage.doc_id for h in hits[:3])
    assert set(hits[0].passage.levels) & LUMBAR
    explicit = index.search("how severe is the stenosis", level="L4-L5")
    assert "stenosis" in explicit[0].passage.doc_id and set(explicit[0].passage.levels) & LUMBAR


def test_level_boost_prefers_documents_about_the_asked_region(index):
    lumbar = index.search("canal stenosis grading", level="L4-L5")
    cervical = index.search("canal stenosis grading", level="C5-C6")
    assert set(lumbar[0].passage.levels) & LUMBAR and not set(lumbar[0].passage.levels) & CERVICAL
    assert set(cervical[0].passage.levels) & CERVICAL and not set(cervical[0].passage.levels) & LUMBAR
    # The same passage scores higher when the asked level is one of its document's levels.
    plain = {h.passage.id: h.score for h in index.search("canal stenosis grading", limit=20, max_per_doc=None)}
    boosted = {h.passage.id: h.score for h in lumbar}
    common = set(plain) & set(boosted)
    assert common and all(boosted[p] > plain[p] for p in common)


def test_modic_type_1_returns_the_modic_document(index):
    hits = index.search("Modic type 1")
    assert hits[0].passage.doc_id == "modic-endplate-changes"


@pytest.mark.parametrize(
    ("query", "doc_id"),
    [
        ("Pfirrmann grade", "disc-degeneration-pfirrmann"),
        ("Castellvi type II", "lumbosacral-transitional-vertebrae-castellvi"),
        ("Bilsky grade 1c", "bilsky-epidural-spinal-cord-compression"),
        ("TLICS score", "tlics-thoracolumbar-injury-score"),
        ("Anderson D'Alonzo type II", "odontoid-fractures"),
        ("Genant grade", "osteoporotic-vertebral-fractures"),
        ("Meyerding slip", "spondylolisthesis-grading"),
        ("SINS mechanical pain", "sins-spinal-instability-neoplastic-score"),
    ],
)
def test_classification_questions_find_their_document(index, query, doc_id):
    assert index.search(query)[0].passage.doc_id == doc_id


@pytest.mark.parametrize(
    "query",
    ['AND OR NOT "(*', "", "   ", "NEAR(a b)", "*", '"', "-", "' OR 1=1 --", "l4-", "^col:", "ü é ß", "x" * 5000,
     "what is it", "the and of", None],
)
def test_weird_input_never_raises(index, query):
    hits = index.search(query, level="not a level")
    assert isinstance(hits, list)
    assert index.search(query) is not None


def test_fts_query_quotes_every_token():
    assert fts_query('AND OR NOT "(*') == '"and" OR "or" OR "not"'
    assert fts_query("how severe is the stenosis") == '"severe" OR "stenosis"'
    assert fts_query("") == "" and fts_query("!!!") == ""


def test_limit_and_per_document_cap(index):
    assert len(index.search("fracture", limit=2)) == 2
    assert index.search("fracture", limit=0) == []
    hits = index.search("fracture classification", limit=10, max_per_doc=1)
    assert len({h.passage.doc_id for h in hits}) == len(hits)


def test_hit_passages_point_back_to_their_source(index):
    hit = index.search("Schizas grade C")[0]
    lines = hit.passage.path.read_text(encoding="utf-8").splitlines()
    assert lines[hit.passage.line - 1].startswith("## ")
    assert index.get(hit.passage.id) == hit.passage


# -- rebuilds ----------------------------------------------------------------------------------------------------
def test_rebuild_only_when_documents_change(tmp_path):
    folder = tmp_path / "knowledge"
    shutil.copytree(FOLDER, folder)
    db = tmp_path / "index" / "knowledge.db"

    with KnowledgeIndex(db, folder) as ix:
        assert ix.build() is True
        count = ix.passage_count()
    with KnowledgeIndex(db, folder) as ix:
        assert ix.build() is False  # same content: kept
        assert ix.passage_count() == count
        assert not ix.search("zanzibarite")

    target = folder / "modic-endplate-changes.md"
    target.write_text(target.read_text(encoding="utf-8") + "\n## Extra\nA zanzibarite note.\n", encoding="utf-8")
    with KnowledgeIndex(db, folder) as ix:
        assert ix.build() is True
        hit = ix.search("zanzibarite")[0]
        assert hit.passage.id == "modic-endplate-changes#extra" and hit.passage.path == target
        assert ix.build() is False

    target.unlink()
    with KnowledgeIndex(db, folder) as ix:
        assert ix.build() is True
        assert ix.passage_count() < count
        assert ix.build(force=True) is True
        count = ix.passage_count()

    with sqlite3.connect(db) as con:  # an index left by an older schema version is rebuilt from scratch
        con.execute("UPDATE meta SET value = 'old' WHERE key = 'schema'")
    con.close()
    with KnowledgeIndex(db, folder) as ix:
        assert ix.stored_hash() is None
        assert ix.build() is True and ix.passage_count() == count


def test_search_builds_lazily(tmp_path):
    with KnowledgeIndex(tmp_path / "k.db") as ix:
        assert ix.search("Modic type 1")
        assert ix.stored_hash()


def test_documents_of_another_region_rank_below_the_asked_region(index):
    """A generic question about a thoracic disc must not surface passages tagged only with cervical levels
    (a cervical document that also lists the C7-T1 junction is still cervical)."""
    docs_by_id = {d.id: d for d in load_documents()}
    hits = index.search("What should I look for at the T11-T12 disc on this CT?", level="T11-T12", limit=5)
    assert hits
    for hit in hits[:3]:
        levels = docs_by_id[hit.passage.doc_id].levels
        assert "all" in levels or any(lv.startswith("T") and "-" not in lv for lv in levels), (hit.passage.id, levels)
