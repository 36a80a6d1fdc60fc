"""The error vocabulary.

Two families:

* For node authors: :class:`PermanentError` (never retried) and :class:`RetryableError`
  (retried, optionally after a given delay). Any other exception a node raises is retried
  when its retry policy says so.
* For the system: :class:`FloxideError` and its subtrees for graph definition, run control,
  checkpoints, context merges and input validation.
"""

from __future__ import annotations

__all__ = [
    "AlreadyCompleted",
    "Cancelled",
    "CheckpointError",
    "FloxideError",
    "GraphError",
    "InputError",
    "MergeError",
    "NoTerminalReached",
    "NodeFailed",
    "NodeTimeout",
    "NotStarted",
    "PayloadTooLarge",
    "PermanentError",
    "RetryableError",
    "StepLimitExceeded",
    "Timeout",
]


class FloxideError(Exception):
    """Base class of every error the engine raises."""


class GraphError(FloxideError):
    """A workflow definition is invalid (raised when the workflow is defined)."""


class InputError(FloxideError):
    """A value does not match the type a node expects; the message names the field."""


class PayloadTooLarge(InputError):
    """A value of a distributed run is over the size limit; ``size`` and ``limit`` are in bytes."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class MergeError(FloxideError):
    """A node changed a context field in a way its merge strategy does not allow."""


class CheckpointError(FloxideError):
    """A checkpoint could not be saved or loaded."""


class NotStarted(FloxideError):
    """The run is unknown: it has no checkpoint or no record."""


class AlreadyCompleted(FloxideError):
    """The run has already finished; there is nothing to resume."""


class Cancelled(FloxideError):
    """The run was cancelled."""

    def __init__(self, message: str = "workflow cancelled") -> None:
        super().__init__(message)


class Timeout(FloxideError):
    """A node or the whole run exceeded its time limit.

    ``scope`` says what timed out: ``"run"`` for the run's deadline, ``"node 'name'"`` for a
    node's ``timeouts`` limit. A run fails with a node timeout as :class:`NodeTimeout`, which
    is both a ``Timeout`` and a :class:`NodeFailed`, so either ``except`` clause catches it.
    """

    def __init__(self, seconds: float, *, scope: str = "run") -> None:
        self.seconds = seconds
        self.scope = scope
        super().__init__(f"{scope} timed out after {seconds:g}s")


class StepLimitExceeded(FloxideError):
    """A run executed more steps than its ``max_steps`` allows (a loop guard)."""


class NoTerminalReached(FloxideError):
    """A run ended without any branch reaching a terminal node."""


class NodeFailed(FloxideError):
    """A node failed and no fallback edge handled the failure.

    ``node`` is the failing node's name, ``attempts`` how often it ran, and ``__cause__``
    the original exception (``error_type``/``error_message`` keep its text when the
    exception itself crossed a process boundary).
    """

    def __init__(self, node: str, error_type: str, error_message: str, *, attempts: int = 1) -> None:
        self.node = node
        self.error_type = error_type
        self.error_message = error_message
        self.attempts = attempts
        tries = "" if attempts <= 1 else f" after {attempts} attempts"
        # FloxideError directly, not super(): in NodeTimeout the next class is Timeout
        FloxideError.__init__(self, f"node '{node}' failed{tries}: {error_type}: {error_message}")


class NodeTimeout(NodeFailed, Timeout):
    """A node exceeded its own time limit (``timeouts``) and no fallback edge handled it.

    Both a :class:`NodeFailed` (``node``, ``attempts``, ``error_type == "Timeout"``, the
    node's :class:`Timeout` as ``__cause__``) and a :class:`Timeout` (``seconds`` is the
    node's limit, ``scope`` is ``"node 'name'"``). A node that fails for another reason —
    including a ``Timeout`` of another scope, such as a nested workflow's deadline or node
    timeout — fails with a plain ``NodeFailed``.
    """

    def __init__(self, node: str, seconds: float, *, attempts: int = 1) -> None:
        self.seconds = seconds
        self.scope = f"node '{node}'"
        NodeFailed.__init__(
            self, node, "Timeout", f"{self.scope} timed out after {seconds:g}s", attempts=attempts
        )


class PermanentError(Exception):
    """Raised by a node for a failure that retrying cannot fix."""


class RetryableError(Exception):
    """Raised by a node for a transient failure; ``delay`` (seconds) overrides the backoff."""

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
