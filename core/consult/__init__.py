"""Level-aware consultations about a study: grounded prompts, knowledge retrieval, persistence, export. No Qt."""
from core.consult.budget import ContextOverflowError
from core.consult.consultation import AnswerStream, Consultation
from core.consult.context import Measurement, StudyContext
from core.consult.export import conversation_markdown
from core.consult.retrieval import PassageRef, default_retriever
from core.consult.store import ConversationStore, StoredMessage

__all__ = [
    "AnswerStream",
    "Consultation",
    "ContextOverflowError",
    "ConversationStore",
    "Measurement",
    "PassageRef",
    "StoredMessage",
    "StudyContext",
    "conversation_markdown",
    "default_retriever",
]
