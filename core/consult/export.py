"""Export a stored conversation to Markdown (the chat panel turns the same text into a PDF)."""
from __future__ import annotations

from core.consult.store import ConversationStore

DISCLAIMER = ("Decision support, not a diagnosis: answers come from a local language model and must be checked "
              "against the images by the clinician.")
_STATUS = {"cancelled": "stopped by the user", "interrupted": "interrupted: the application stopped",
           "error": "failed", "streaming": "incomplete"}


def conversation_markdown(store: ConversationStore, conversation_id: int) -> str:
    conv = store.conversation(conversation_id)
    lines = [f"# {conv['title'] or 'Consultation'}", "",
             f"*{DISCLAIMER}*", "",
             f"- Study: {conv['study_key'] or 'unknown'}" + (f", series {conv['series_uid']}" if conv["series_uid"]
                                                             else ""),
             f"- Model: {conv['model']}",
             f"- Started: {conv['created_at']}", "",
             "## Study context", "", "```", conv["context_text"] or "(none)", "```", ""]
    for m in store.messages(conversation_id):
        if m.role == "note":
            lines += [f"> Note: {m.content}", ""]
        elif m.role == "user":
            level = f" · level {m.level}" if m.level else ""
            lines += [f"### Question{level}", "", m.content.strip(), ""]
        else:
            status = f" ({_STATUS[m.status]})" if m.status in _STATUS else ""
            lines += [f"### Answer{status}", "", m.content.strip() or "*(no text)*", ""]
            if m.passages:
                lines.append("Knowledge passages given to the model: "
                             + "; ".join(f"[{p['id']}] {p.get('title', '')}".strip() for p in m.passages))
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"
