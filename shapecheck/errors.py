"""The one exception type shapecheck raises for problems the user can fix (exit code 2)."""


class ShapecheckError(Exception):
    """A bad argument, an unreadable file or a target that cannot be loaded; the message is one line."""

    def __init__(self, message: str, kind: str = "usage"):
        super().__init__(message)
        self.kind = kind
