"""Signatures: typed input and output fields, and the instructions of one LM task.

Class form (``class QA(Signature)``) and string form (``"question -> answer: int"``),
parsed without ``eval``. Signatures are immutable classes, shared freely between
threads; a malformed one raises :class:`SignatureError` when it is built.
"""

from dspex_actors.signatures._errors import InputFieldsError, SignatureError
from dspex_actors.signatures._fields import FieldSpec, InputField, OutputField
from dspex_actors.signatures._signature import (
    Signature,
    annotation_allows_none,
    ensure_signature,
    make_signature,
)

__all__ = [
    "FieldSpec",
    "InputField",
    "InputFieldsError",
    "OutputField",
    "Signature",
    "SignatureError",
    "annotation_allows_none",
    "ensure_signature",
    "make_signature",
]
