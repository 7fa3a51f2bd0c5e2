"""Curation sources: the knowledge base (knowledge.py), local imaging case folders (cases.py), DICOM
de-identification (deid.py), and importers for public labelled datasets: VerSe, TotalSegmentator outputs, SPIDER,
RSNA 2024 lumbar. Every importer returns :class:`~curation.sources.cases.LabelledCase` objects.
"""
