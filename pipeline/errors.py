"""The one base class of errors a user can act on.

Anything raised as a :class:`UserError` (bad params, missing or malformed files, unreachable
services, bad storage URIs) is printed by the command lines as one line and exits 2; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input, phrased for the person who has to fix it."""
