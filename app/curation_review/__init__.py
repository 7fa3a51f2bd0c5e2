"""Clinician review of curated items inside the app: :class:`ReviewPane` (the queue of the curation store)."""
from app.curation_review.review_pane import ReviewPane, open_review_window

__all__ = ["ReviewPane", "open_review_window"]
