"""The corpus's one user-facing error (its own module so every corpus module can raise it)."""

from pipeline.errors import UserError

RECORDINGS_HINT = ("or put your own WAV/FLAC speech in the recordings/ folder and train on it "
                   "with `signal: {family: wav, folder: recordings}` instead")


class CorpusError(UserError, RuntimeError):
    """The Debian speech corpus cannot be fetched or built; the message says what to do."""
