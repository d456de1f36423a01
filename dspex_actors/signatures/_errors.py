"""The errors of the signature layer: a malformed signature, or call inputs that do not fit.

Both are ``ValueError`` subclasses, raised when a signature is built or inputs are checked.
"""

from __future__ import annotations

__all__ = ["InputFieldsError", "SignatureError"]


class SignatureError(ValueError):
    """A signature is malformed (bad string, bad field), or call inputs do not match it."""


class InputFieldsError(SignatureError):
    """The inputs given for a call do not match the signature's input fields.

    Attributes:
        missing: required input fields that were not given (signature order).
        unknown: given names that are not input fields (given order).
    """

    def __init__(self, message: str, *, missing: tuple[str, ...], unknown: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unknown = unknown
