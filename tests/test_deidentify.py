"""De-identification before a server: a DICOM series written here with the patient's name, ID, birth date and
accession number inside its study and series descriptions goes through a consultation to a server on 127.0.0.1 that
records each request body; none of those values may be in it, while the spine content (modality, levels, measurements,
the clean part of the descriptions) is. Plus the text scrubber on its own: what it removes, and that it leaves our own
knowledge base and report templates as they are."""
from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from core.consult import Consultation, ConversationStore, Measurement, StudyContext
from core.inference.backend import GenerationParams
from core.inference.deidentify import (
    Identifiers,
    deidentify_context,
    identifiers_of_source,
    scrub_messages,
    scrub_text,
)
from core.inference.server_backend import ServerBackend, ServerSettings
from core.studies import scan
from tests.test_studies_dicom import ct_slice, save

REPO = Path(__file__).resolve().parents[1]
NAME, GIVEN, MIDDLE = "Kowalczyk", "Marta", "Ewa"
PATIENT_ID, ACCESSION, BIRTH = "HX7734521", "ACC99812", "19580412"
SECRETS = [NAME, GIVEN, MIDDLE, PATIENT_ID, ACCESSION, BIRTH, "1958-04-12", "12/04/1958", "Nowak", "Piotr"]


def write_identified_series(folder: Path, n_slices: int = 3, **kw) -> Path:
    """CT slices (``kw``: tests.test_studies_dicom.ct_slice options) whose descriptions carry the patient's
    identifiers, as some scanners' free text does."""
    series_uid = generate_uid()
    for n in range(n_slices):
        ds = ct_slice((-10.0, -20.0, 5.0 * n), series_uid=series_uid, value=1000, instance=n + 1, **kw)
        ds.PatientName = f"{NAME}^{GIVEN}^{MIDDLE}"
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH
        ds.AccessionNumber = ACCESSION
        ds.ReferringPhysicianName = "Nowak^Piotr"
        ds.PatientAge = "066Y"
        ds.StudyDescription = f"LSPINE {NAME} {GIVEN} {PATIENT_ID} 12/03/2024"
        ds.SeriesDescription = f"Sag T2 {GIVEN.upper()} {NAME.upper()} DOB 1958-04-12 acc {ACCESSION} ref Dr Nowak"
        save(ds, folder / f"slice{n}.dcm")
    return folder


class RecordingServer:
    """An OpenAI-compatible stand-in on 127.0.0.1 that records every request body and streams a short answer."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({"data": [{"id": "spine-70b", "max_model_len": 8192}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for text, finish in (("The disc height is reduced.", None), (None, "stop")):
                    delta = {"content": text} if text else {}
                    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def sent_text(self) -> str:
        """Every body as one lower-case string (JSON escapes undone)."""
        return "\n".join(json.dumps(json.loads(b), ensure_ascii=False) for b in self.bodies).lower()


@pytest.fixture
def server():
    s = RecordingServer()
    yield s
    s.close()


@pytest.fixture
def identified_source(tmp_path):
    result = scan(write_identified_series(tmp_path / "dicom"))
    assert len(result.series) == 1, result.problems
    return result.series[0]


def test_identifiers_come_from_the_header(identified_source):
    ids = identifiers_of_source(identified_source)
    assert {PATIENT_ID, ACCESSION, BIRTH, "1958-04-12"} <= set(ids.values)
    assert {NAME, GIVEN, MIDDLE, "Nowak", "Piotr"} <= set(ids.name_words)


def test_consultation_through_a_server_sends_no_identifier(identified_source, server, tmp_path):
    context = StudyContext.from_series_source(identified_source, levels_in_view=["L4", "L4-L5", "L5"],
                                              measurements=[Measurement("disc height", "L4-L5", 6.1, "mm")])
    raw = context.to_text()
    assert NAME in raw and PATIENT_ID in raw  # the descriptions do carry them: the test would catch a leak

    backend = ServerBackend(ServerSettings(enabled=True, url=server.url, timeout_s=20))
    backend.load()
    backend.set_identifiers(identifiers_of_source(identified_source))
    store = ConversationStore(tmp_path / "conv.db")
    consult = Consultation(backend, store, context, study_key="study-1",
                           params=GenerationParams(max_tokens=24, temperature=0.0))
    answer = consult.ask(f"Is Mrs {NAME}'s disc height at L4-L5 reduced?", "L4-L5")
    assert answer.consume().strip() and answer.status == "complete"
    store.close()

    sent = server.sent_text()
    assert server.bodies
    leaked = [s for s in SECRETS if s.lower() in sent]
    assert not leaked, f"identifiers sent to the server: {leaked}"
    for kept in ("modality: ct", "lspine", "sag t2", "l4-l5", "disc height: 6.1 mm", "66 years"):
        assert kept in sent, kept


def test_without_header_values_patterns_still_remove_the_identifiers(server):
    """A caller that never set the study's identifiers (e.g. a command-line path): titles, Family^Given names,
    labelled IDs, dates and record numbers still go."""
    backend = ServerBackend(ServerSettings(enabled=True, url=server.url, timeout_s=20))
    messages = [{"role": "system", "content": 'Study: "LSPINE Kowalczyk^Marta 12/03/2024" MRN 7734521'},
                {"role": "user", "content": "Mrs Kowalczyk (DOB 12.04.1958, HX7734521): is L4-L5 narrowed?"}]
    "".join(backend.chat_stream(messages, GenerationParams(max_tokens=8)))
    sent = server.sent_text()
    assert not [s for s in ("kowalczyk", "marta", "7734521", "12/03/2024", "12.04.1958") if s in sent]
    assert "l4-l5 narrowed" in sent and "lspine" in sent


@pytest.mark.parametrize("text, gone", [
    ("Doe^Jane^Q lumbar", ["Doe", "Jane"]),
    ("seen by Dr. Alan Grant on 3 March 2024", ["Alan", "Grant", "March 2024"]),
    ("follow-up March 4, 2024 and 2024-03-12 and 12/03/24", ["March 4", "2024-03-12", "12/03/24"]),
    ("Name: Jane Q Doe; MRN: 12345X", ["Jane", "Doe", "12345X"]),
    ("call 0161 234 5678 or j.doe@example.org", ["234 5678", "example.org"]),
    ("UID 1.2.840.113619.2.55.3 acc no. 88123", ["113619", "88123"]),
])
def test_patterns_remove_names_dates_ids_and_contacts(text, gone):
    out = scrub_text(text)
    assert not [g for g in gone if g in out], out


def test_spine_content_is_kept():
    lines = ["Levels in view: C2-C3, T11, T11-T12, T12, L4-L5, L5-S1, S1",
             "- L4-L5 disc height: 7.2 mm", "- L2 anterior height loss: 35.5 %", 'Series: CT "Spine 1.0 B31s" (20 images)',
             "Patient: 54 years, male", "[F-genant-L2] Genant grade 2 (Genant 1993); Meyerding grade I; Fardon 2014",
             "Cobb angle 23.4 deg from T5 to T12; slip 0.00564 of the width"]
    assert [scrub_text(x) for x in lines] == lines


def test_knowledge_base_and_report_templates_pass_unchanged():
    """What a consultation or a report sends besides the study (knowledge passages, templates) is not damaged."""
    files = sorted((REPO / "resources" / "knowledge").rglob("*.md")) + \
        sorted((REPO / "resources" / "report_templates").rglob("*.*"))
    assert len(files) > 20
    changed = [f.name for f in files if scrub_text(t := f.read_text(encoding="utf-8")) != t]
    assert not changed


def test_known_values_go_case_insensitively_and_messages_keep_their_images():
    ids = Identifiers(values=("HX7734521",), name_words=("Kowalczyk", "Marta"))
    msgs = [{"role": "user", "content": "MARTA kowalczyk hx7734521 L5-S1", "images": [b"png"]},
            {"role": "user", "content": [{"type": "text", "text": "Marta at L5"}, {"type": "image_url"}]}]
    out = scrub_messages(msgs, ids)
    assert out[0]["content"] == "[name] [name] [id] L5-S1" and out[0]["images"] == [b"png"]
    assert out[1]["content"][0]["text"] == "[name] at L5" and out[1]["content"][1] == {"type": "image_url"}
    assert msgs[0]["content"].startswith("MARTA")  # the caller's messages are not changed


def test_deidentified_context_drops_the_date_and_keeps_age_and_sex():
    ctx = StudyContext(modality="MR", study_description="L-spine Kowalczyk", study_date="20240312",
                       series=['MR "Sag T2 Marta" (15 images)'], patient_age="066Y", patient_sex="F",
                       prior_findings=["seen 12/03/2023 by Dr Nowak"])
    out = deidentify_context(ctx, Identifiers(name_words=("Kowalczyk", "Marta")))
    text = out.to_text()
    assert "Kowalczyk" not in text and "Marta" not in text and "2024" not in text and "Nowak" not in text
    assert "66 years, female" in text and "Sag T2" in text
    assert ctx.study_description == "L-spine Kowalczyk"  # a copy


def test_spinemed_ask_through_the_server_sends_no_identifier(tmp_path, server, spinemed_home, capsys):
    """The command line passes the study's header identifiers to the server backend, as the app's session does."""
    from app.cli import main

    folder = write_identified_series(tmp_path / "dicom")
    ServerSettings(enabled=True, url=server.url, timeout_s=20).save()
    code = main(["ask", str(folder), "--level", "L4-L5", "--no-knowledge", "--max-tokens", "16",
                 f"Is the disc of {GIVEN} {NAME} at L4-L5 narrowed?"])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()  # the (checked) answer
    sent = server.sent_text()
    assert server.bodies and "l4-l5" in sent
    leaked = [s for s in SECRETS if s.lower() in sent]
    assert not leaked, f"identifiers sent to the server: {leaked}"


def test_one_table_for_the_file_deidentifier_and_the_server_scrubber():
    """PS3.15 Table E.1-1 lives in core.studies.deid_profile; both de-identifiers read it."""
    from core.inference import deidentify as scrubber
    from core.studies.deid_profile import PROFILE
    from curation.sources import deid as file_deid

    assert file_deid.PROFILE is PROFILE
    assert {"PatientName", "ReferringPhysicianName", "OperatorsName", "ReviewerName"} <= set(
        scrubber.PERSON_NAME_ATTRIBUTES)
    listed = scrubber.PERSON_NAME_ATTRIBUTES + scrubber.IDENTIFIER_ATTRIBUTES + scrubber.FREE_TEXT_ATTRIBUTES
    assert set(listed) <= set(PROFILE)
