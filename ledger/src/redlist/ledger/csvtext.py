"""The text of a CSV file saved by a spreadsheet: UTF-8 or the Chinese Windows encoding.

Every CSV file the town's people bring (award sheets, rule catalogues, reversal lists,
the resident register) is read here, so all are read alike. Excel on a Chinese Windows
saves "CSV UTF-8 (comma delimited)" as UTF-8 with a byte order mark, and plain "CSV
(comma delimited)" as GB18030, of which GBK and GB2312 are subsets. The bytes are tried
as UTF-8 first, strictly, and only if they are not UTF-8 as GB18030: text in Chinese is
practically never valid UTF-8 by accident, and pure ASCII reads the same either way.
"Unicode text" (UTF-16) is refused with the way to save the file again, as are bytes
that are neither, naming the row where they stop being text.

The encoding used is returned as a label (:data:`UTF8_BOM`, :data:`UTF8` or
:data:`GB18030`, marked for translation: show it with ``_``), so a command can say how
it read the file. What is read is the text, never the bytes: the same sheet saved in
either encoding gives the same text.
"""

from __future__ import annotations

import codecs

from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _

UTF8_BOM = N_("UTF-8 (with the byte order mark Excel writes)")
UTF8 = "UTF-8"
GB18030 = N_("GB18030 (the Chinese Windows encoding)")


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """The text of the CSV file ``name`` and the encoding it was read with
    (:data:`UTF8_BOM`, :data:`UTF8` or :data:`GB18030`), or ``FormatError``."""
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        raise FormatError(
            _(
                "{name} is saved as 'Unicode text' (UTF-16); in Excel use Save As, 'CSV UTF-8 "
                "(comma delimited) (*.csv)'"
            ).format(name=name)
        )
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), UTF8_BOM
        except UnicodeDecodeError as error:
            raise FormatError(
                _(
                    "{name} starts as UTF-8 but is not UTF-8 text in row {row}; save it again as "
                    "'CSV UTF-8 (comma delimited) (*.csv)'"
                ).format(name=name, row=_row_at(data, error.start))
            ) from None
    try:
        return data.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").removeprefix("\ufeff"), GB18030
    except UnicodeDecodeError as error:
        raise FormatError(
            _(
                "{name} is neither UTF-8 nor GB18030 (Chinese Windows) text (first seen in row "
                "{row}); in Excel use Save As, 'CSV UTF-8 (comma delimited) (*.csv)'"
            ).format(name=name, row=_row_at(data, error.start))
        ) from None


def _row_at(data: bytes, offset: int) -> int:
    """The row (as a spreadsheet numbers it, from 1) of byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1
