"""Reports in the library database (tables of migration ``004_reports``): every save a new version, sign-off locks.

    store = ReportStore()                          # the library file (core.paths), or ReportStore(path)
    info = store.save(report, author="Dr A")       # -> VersionInfo(version, author, saved_at, summary)
    store.load(report_id)                          # latest version (store.load(report_id, version=2) for an older one)
    store.versions(report_id)                      # [VersionInfo], oldest first: who changed what, when
    store.sign(report_id, "Dr A")                  # a new, signed version; later saves raise ReportLockedError
    store.latest_for_series(series_uid)            # the report shown when a series is opened

Each version stores the whole report JSON and a one-line diff summary against the previous version (statements
accepted / rejected / edited / added / removed). Writes are single transactions; one lock serialises threads.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.library.database import LibraryStore
from core.report.model import ReportLockedError, SpineReport, now_iso


@dataclass(frozen=True)
class VersionInfo:
    report_id: str
    version: int
    author: str
    saved_at: str
    summary: str
    signed: bool


def diff_summary(old: SpineReport | None, new: SpineReport) -> str:
    """What changed between two versions, in one line (ids listed, at most five per kind)."""
    if old is None:
        n = sum(1 for _ in new.statements())
        by = f" by {new.model}" if new.model else ""
        extra = f"; {new.incomplete}" if new.incomplete else ""
        return f"first version: {n} statements drafted{by}{extra}"
    before = {s.id: s for _, s in old.statements()}
    after = {s.id: s for _, s in new.statements()}
    changes: dict[str, list[str]] = {"accepted": [], "rejected": [], "edited": [], "reopened": []}
    for sid, s in after.items():
        o = before.get(sid)
        if o is None:
            continue
        if s.text != o.text or s.grade != o.grade:
            changes["edited"].append(sid)
        elif s.status != o.status:
            key = {"accepted": "accepted", "rejected": "rejected", "edited": "edited"}.get(s.status, "reopened")
            changes[key].append(sid)
    changes["added"] = [sid for sid in after if sid not in before]
    changes["removed"] = [sid for sid in before if sid not in after]
    parts = []
    for kind, ids in changes.items():
        if ids:
            shown = ", ".join(ids[:5]) + (f" +{len(ids) - 5}" if len(ids) > 5 else "")
            parts.append(f"{kind} {len(ids)} ({shown})")
    if new.signature is not None and old.signature is None:
        parts.append(f"signed by {new.signature.name}")
    if new.incomplete != old.incomplete:
        parts.append(new.incomplete or "marked complete")
    return "; ".join(parts) or "no changes"


class ReportStore(LibraryStore):
    # --- writing -------------------------------------------------------------------------------------------
    def save(self, report: SpineReport, author: str, study_key: str = "") -> VersionInfo:
        """Store ``report`` as a new version by ``author``; ``report.version`` is updated."""
        author = " ".join((author or "").split())
        if not author:
            raise ValueError("a report version needs its author")
        with self._lock:
            row = self._row(report.report_id)
            if row is not None and row["signed_version"] is not None:
                raise ReportLockedError(f"report {report.report_id} was signed by {row['signed_by']} at "
                                        f"{row['signed_at']} (version {row['signed_version']}) and is locked")
            previous = self.load(report.report_id) if row is not None else None
            version = (row["latest_version"] if row else 0) + 1
            saved_at = now_iso()
            if report.signature is not None and not report.signature.version:
                report.signature.version = version
            report.version = version
            summary = diff_summary(previous, report)
            signed = report.signature is not None
            with self.db.conn:
                if row is None:
                    self.db["reports"].insert({
                        "report_id": report.report_id, "series_uid": report.study.series_uid, "study_key": study_key,
                        "created_at": saved_at, "updated_at": saved_at, "latest_version": version})
                else:
                    self.db["reports"].update(report.report_id, {"updated_at": saved_at, "latest_version": version})
                if signed:
                    self.db["reports"].update(report.report_id, {
                        "signed_version": version, "signed_by": report.signature.name,
                        "signed_at": report.signature.signed_at})
                self.db["report_versions"].insert({
                    "report_id": report.report_id, "version": version, "author": author, "saved_at": saved_at,
                    "summary": summary, "signed": int(signed), "document": report.to_json(indent=None)})
            return VersionInfo(report.report_id, version, author, saved_at, summary, signed)

    def sign(self, report: SpineReport | str, name: str, accept_remaining: bool = False) -> SpineReport:
        """Sign the latest version (unsaved changes of a passed report are saved within the signed version)."""
        with self._lock:
            if isinstance(report, str):
                report = self.load(report)
            report.sign(name, accept_remaining=accept_remaining)
            try:
                self.save(report, author=name)
            except Exception:
                report.signature = None  # nothing was stored: the object stays editable
                raise
            return report

    # --- reading -------------------------------------------------------------------------------------------
    def _row(self, report_id: str) -> dict | None:
        rows = list(self.db["reports"].rows_where("report_id = ?", [report_id]))
        return rows[0] if rows else None

    def load(self, report_id: str, version: int | None = None) -> SpineReport:
        with self._lock:
            if version is None:
                rows = self.db.execute("select document, version from report_versions where report_id = ? "
                                       "order by version desc limit 1", [report_id]).fetchall()
            else:
                rows = self.db.execute("select document, version from report_versions where report_id = ? and "
                                       "version = ?", [report_id, version]).fetchall()
        if not rows:
            raise KeyError(f"no report {report_id}" + (f" version {version}" if version else "") + f" in {self.path}")
        report = SpineReport.from_json(rows[0][0])
        report.version = rows[0][1]
        return report

    def versions(self, report_id: str) -> list[VersionInfo]:
        with self._lock:
            rows = self.db.execute("select version, author, saved_at, summary, signed from report_versions "
                                   "where report_id = ? order by version", [report_id]).fetchall()
        return [VersionInfo(report_id, v, a, t, s, bool(sg)) for v, a, t, s, sg in rows]

    def is_locked(self, report_id: str) -> bool:
        with self._lock:
            row = self._row(report_id)
        return row is not None and row["signed_version"] is not None

    def reports_for_series(self, series_uid: str) -> list[dict]:
        with self._lock:
            return list(self.db["reports"].rows_where("series_uid = ?", [series_uid], order_by="updated_at desc"))

    def latest_for_series(self, series_uid: str) -> SpineReport | None:
        rows = self.reports_for_series(series_uid)
        return self.load(rows[0]["report_id"]) if rows else None
