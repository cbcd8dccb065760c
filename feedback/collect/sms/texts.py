"""What the SMS channel says, and the keywords it hears. Neutral on purpose: nothing names
trafficking, abuse or the organisation (unless it set a name to use). Answers are digits only:
words such as END or CANCEL are carrier opt-out keywords, and never mean an answer."""

from __future__ import annotations

import re
import unicodedata

from feedback.i18n import N_

UNKNOWN_CODE = N_("Sorry, that code does not work. Please check it and send it again.")
CHOOSE_LANGUAGE = N_("Reply with a number:")
UNREADABLE = N_("Sorry, I could not read that.")
LIKERT_HINT = N_("Reply 1 (disagree) to 5 (agree), or 0 to skip.")
YES_NO_HINT = N_("Reply 1 for yes, 2 for no, or 0 to skip.")
CHOICE_HINT = N_("Reply with a number, or 0 to skip.")
THANKS = N_("Thank you. Your answers were sent. You can delete these messages.")
HELP = N_("A short survey. Reply with the number shown. Send RESTART to begin again, STOP to end.")
NO_NEWS = N_("There is no news yet.")
NAMED = N_("From {name}:")

# Keywords, in every shipped language, compared without case, accents or spaces around.
STOP_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT OUT",
        "CANCEL",
        "PARAR",
        "ALTO",
        "CANCELAR",
        "BAJA",
        "DETENER",
        "FIN",
        "SALIR",
    }
)
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})
RESTART_WORDS = frozenset({"RESTART", "REINICIAR"})
NEWS_WORDS = frozenset({"NEWS", "NOTICIAS"})
KEYWORDS = {
    **dict.fromkeys(STOP_WORDS, "stop"),
    **dict.fromkeys(HELP_WORDS, "help"),
    **dict.fromkeys(RESTART_WORDS, "restart"),
    **dict.fromkeys(NEWS_WORDS, "news"),
}
MAX_BODY = 1600  # ten segments: anything longer is not an answer


def normalise(body: str) -> str:
    """Upper case, accents off, runs of spaces as one, trimmed."""
    folded = unicodedata.normalize("NFKD", body[:MAX_BODY])
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", plain).strip().upper()


def keyword(body: str) -> str | None:
    """ "stop", "help", "restart" or "news" when the message is that keyword."""
    return KEYWORDS.get(normalise(body).strip(".!"))
