"""Structured spine reports: model, constrained drafting with the local model, versioned store, export. No Qt.

    from core.report import draft_report, export_report, ReportStore, SpineReport
    report = draft_report(backend, context, labelling, series_uid=uid, progress=cb, cancel=token)
    ReportStore().save(report, author="SpineMed draft")
    export_report(report, "report.pdf", volume=volume)      # .pdf .docx .txt .json .dcm

Modules: ``model`` (dataclasses, JSON), ``schema`` (JSON schema + validator), ``templates`` (per modality),
``levels`` (which levels are reported), ``prompts``/``constrained``/``draft`` (drafting), ``store`` (versions,
sign-off), ``study`` (gathering a series headless), ``export`` (PDF, DOCX, text, JSON, DICOM SR).
"""
from core.report.draft import NeedsLabellingError, draft_report
from core.report.export import ExportError, export_formats, export_report
from core.report.model import DISCLAIMER, ReportFormatError, ReportLockedError, SpineReport, Statement
from core.report.store import ReportStore, VersionInfo

__all__ = [
    "DISCLAIMER",
    "ExportError",
    "NeedsLabellingError",
    "ReportFormatError",
    "ReportLockedError",
    "ReportStore",
    "SpineReport",
    "Statement",
    "VersionInfo",
    "draft_report",
    "export_formats",
    "export_report",
]
