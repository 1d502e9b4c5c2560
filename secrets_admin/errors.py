"""One error type for the portal: :class:`PortalError` carries a message safe to show (never a
value) and the HTTP status a view answers it with.

Every refusal and failure a use case raises is one of this family: the refusals of the write
use cases (below), :class:`~secrets_admin.aws.AwsError` and its subclasses (502 unless they say
otherwise), :class:`~secrets_admin.audit.AuditUnavailable` (503). Views render any of them with
:func:`secrets_admin.views.errors.error_response` instead of choosing a status themselves.

Statuses follow RFC 9110 section 15: 400 for input the portal can't use, 403 for something this
person may not do, 404 for what does not exist, 409 for a request that conflicts with the
secret's or the request's current state, 502 for an upstream (AWS) failure, 503 when the audit
log can't record (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .changes.protocol import ConflictCell


class PortalError(Exception):
    """A refusal or failure with a message for the person and the status of the answer.

    ``message`` says what happened and what to do; it never holds a secret value.
    ``status`` is the class's :attr:`status` unless given. A subclass names only what differs
    from its parent: ``status`` and ``code`` as class keywords
    (``class Forbidden(PortalError, status=HTTPStatus.FORBIDDEN, code="Forbidden")``), a fixed
    ``message`` as a class attribute.
    """

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "Error"
    message: str = "Something went wrong."

    def __init_subclass__(
        cls, *, status: HTTPStatus | None = None, code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str | None = None, status: HTTPStatus | None = None) -> None:
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        super().__init__(self.message)


class InvalidInput(PortalError, status=HTTPStatus.BAD_REQUEST, code="InvalidInput"):
    """Input the portal can't use (400)."""


class Forbidden(PortalError, status=HTTPStatus.FORBIDDEN, code="Forbidden"):
    """This person may not do this (403)."""


class NotFound(PortalError, status=HTTPStatus.NOT_FOUND, code="NotFound"):
    """There is no such thing (404)."""


class StateConflict(PortalError, status=HTTPStatus.CONFLICT, code="StateConflict"):
    """The request conflicts with the current state of the secret or request (409)."""


class UpstreamError(PortalError, status=HTTPStatus.BAD_GATEWAY, code="UpstreamError"):
    """A service the portal depends on (Secrets Manager, KMS, STS) failed (502)."""


class Unavailable(PortalError, status=HTTPStatus.SERVICE_UNAVAILABLE, code="Unavailable"):
    """The portal can't carry this out safely right now, e.g. the audit log is down (503)."""


# --------------------------------------------------------------------------------------------
# Refusals of the write use cases (secrets_admin.changes)


class ChangeRefused(InvalidInput, code="Refused"):
    """The portal will not make this change; ``message`` says why and what to do (400 unless a
    subclass says otherwise).

    Raised before any write, except :class:`SaveContended` (whose writes did not land).
    """


class NotEditable(ChangeRefused, code="NotEditable"):
    """The version is binary, non-standard or managed elsewhere: never rewritten (invariant 5)."""


class InvalidChange(ChangeRefused, code="InvalidChange"):
    """An edit that can't apply, a bad name, a malformed change id (400)."""


class NoChanges(ChangeRefused, status=HTTPStatus.OK, code="NoChanges"):
    """The edits leave the secret as it is (200: nothing is wrong, nothing was saved)."""

    message = "No changes: the edits leave the secret as it is, so nothing was saved."


class SaveContended(ChangeRefused, status=HTTPStatus.CONFLICT, code="SaveContended"):
    """Others kept saving while this save rebased (409)."""

    message = (
        "Others saved this secret several times while yours was being saved, so it was not "
        "saved (nothing of yours landed). Re-apply your edits on the current version."
    )


class SecretExists(ChangeRefused, code="SecretExists"):
    """A secret of that name exists already (400)."""


class SecretPendingDeletion(ChangeRefused, code="SecretPendingDeletion"):
    """A secret of that name is scheduled for deletion; an admin may restore it instead."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"A secret named {name} exists but is scheduled for deletion, so a new one can't be "
            "created with that name. An admin can restore it (cancel the deletion) instead."
        )


class LabelLimit(ChangeRefused, code="LabelLimit"):
    """One more ``CR-<id>`` label would pass AWS's 20 staging labels per secret."""


class SavedUnrecorded(Unavailable, code="SavedUnrecorded"):
    """The write landed but its outcome could not be added to the audit log (its attempt is)."""

    def __init__(self, version_id: str) -> None:
        self.version_id = version_id
        super().__init__(
            f"Your change was saved as version {version_id}, but the audit log could not record "
            "the outcome (its attempt is recorded). Tell the portal's operators."
        )


class Conflict(StateConflict, code="Conflict"):
    """Someone else changed cells this changeset touches. Nothing of the change landed.

    ``cells`` give base / theirs / yours per conflicting cell; ``base_version_id``,
    ``current_version_id`` (theirs) and ``yours_version_id`` (the staged, never-current version)
    are real versions, so permitted roles can reveal each side with ``reads.cell_reveal``.
    """

    def __init__(
        self,
        *,
        name: str,
        cells: Sequence[ConflictCell],
        base_version_id: str,
        current_version_id: str,
        yours_version_id: str,
    ) -> None:
        self.name = name
        self.cells = list(cells)
        self.base_version_id = base_version_id
        self.current_version_id = current_version_id
        self.yours_version_id = yours_version_id
        super().__init__(
            f"Someone else changed {len(cells)} of the cells you edited after you opened the "
            "secret. Nothing was saved. Compare the versions and re-apply your edits on the "
            "current version."
        )


# --------------------------------------------------------------------------------------------
# Change requests (invariant 4: a second person for protected environments)


class ChangeRequestRefused(ChangeRefused, code="ChangeRequestRefused"):
    """This person may not do that to this request now (400); ``message`` says why."""


class ChangeRequestNotOpen(
    ChangeRequestRefused, status=HTTPStatus.CONFLICT, code="ChangeRequestNotOpen"
):
    """The request is no longer open (decided, cancelled, expired): nothing was changed (409)."""


class SelfApproval(ChangeRequestRefused, status=HTTPStatus.FORBIDDEN, code="SelfApproval"):
    """The author can't approve, reject or acknowledge their own request (403)."""

    message = (
        "You proposed this change request, so you can't approve or reject it: a second "
        "person has to (whatever your role). Cancel it instead if it is no longer wanted."
    )


class ChangeRequestNotFound(NotFound, code="ChangeRequestNotFound"):
    """No change request has that id (404)."""

    message = "There is no such change request."
