"""The one exception type for user mistakes.

Anything a user can fix (a bad name, a shape that does not fit, a missing file) raises
:class:`UmetaError` with a one-line message that names the bad value and the fix. The CLI turns
it into that line on stderr and exit status 2; library users can catch it as a ``ValueError``.
"""

from __future__ import annotations


class UmetaError(ValueError):
    """A problem with user input; the message says what to fix."""
