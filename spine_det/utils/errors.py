"""The errors a user can fix (a bad file, config, checkpoint or device), as opposed to bugs.

Every such error derives from :class:`UserError`; every tool reports it the same way
(:func:`spine_det.utils.cli.reports_user_errors`): ``error: <message>`` in one line on stderr, no
traceback, exit status :data:`EXIT_USER_ERROR` (2, argparse's status for a bad flag). It lives at the
bottom of the package so that any layer can raise it without importing the others.
"""
from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, os.PathLike]

EXIT_USER_ERROR = 2  # the exit status of every refusal: a UserError, like argparse's usage errors


class UserError(Exception):
    """Bad input that the user can fix; its message is one line naming the file, key or device."""


class DataError(UserError, ValueError):
    """A bad input file: one clear line naming the file (and the patient, when known)."""

    def __init__(self, file: PathLike, reason: str, patient: Optional[str] = None) -> None:
        self.file = str(file)
        self.reason = reason
        self.patient = patient
        where = f"patient {patient!r}: " if patient else ""
        super().__init__(f"{where}{self.file}: {reason}")

    def __reduce__(self):  # picklable across the conversion's process pool
        return (DataError, (self.file, self.reason, self.patient))

    def with_patient(self, patient: str) -> "DataError":
        """The same error, now naming the patient."""
        return DataError(self.file, self.reason, patient)

    def as_problem(self) -> dict:
        """The form stored in :attr:`spine_det.data.layout.Manifest.problems`."""
        return {"patient": self.patient, "file": self.file, "reason": self.reason}
