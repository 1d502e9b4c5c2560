"""Database models: names, metadata and fingerprints only, never a secret value."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class SecretSummary(models.Model):
    """What the portal last learned of a secret's structure, to show on the list page.

    Filled when the portal reads a secret (grid, scan) or writes it. Holds names and counts, never
    values. ``version_id`` says which version it describes; the list compares it with the
    ``AWSCURRENT`` version reported by ``ListSecrets`` to tell whether it is still current.
    """

    name = models.CharField(max_length=512, unique=True)
    version_id = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=20)
    reasons = models.JSONField(default=list)
    environments = models.JSONField(default=list)
    service_count = models.PositiveIntegerField(default=0)
    missing_cells = models.JSONField(default=dict)  # environment -> number of missing cells
    size_bytes = models.PositiveIntegerField(default=0)
    # service -> its key names (over all environments): what search by service or key reads
    keys = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    @property
    def missing_total(self) -> int:
        """Drift in one number: cells missing across all environments (0: all in step)."""
        return sum(int(n) for n in self.missing_cells.values())


class AuditChainHead(models.Model):
    """The single row that serialises appends to the audit chain (row lock in PostgreSQL)."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"


class AuditEventImmutable(Exception):
    """Raised on an attempt to change or delete an audit event through the ORM."""

    def __init__(self) -> None:
        super().__init__("Audit events are append-only: they are never updated or deleted.")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Events are append-only: bulk updates and deletes are refused, except clearing the
    ``actor`` link when a user is deleted (that link is not hashed; ``actor_*`` copies are)."""

    def update(self, **kwargs: Any) -> int:
        if set(kwargs) != {"actor"} or kwargs["actor"] is not None:
            raise AuditEventImmutable()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditEventImmutable()


class AuditEvent(models.Model):
    """One append-only, hash-chained audit record (ASVS 5.0 V16, "Security Logging and Error
    Handling"). Never holds a value.

    ``hash`` = SHA-256 over ``prev_hash`` and the canonical serialisation of the other fields
    (``audit.canonical``). ``seq`` numbers events without gaps, so a deleted row is detected.
    ``action`` is an ``audit.AuditAction`` and ``outcome`` an ``audit.Outcome``. Only
    ``audit.record``/``audit.attempt`` create events; the ORM refuses to change or delete one
    (a database role with INSERT and SELECT only on this table enforces it in production).
    """

    seq = models.BigIntegerField(unique=True)
    created = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=40, db_index=True)
    outcome = models.CharField(max_length=20, blank=True)
    # Who: the user at the time (copied, so the row stays meaningful if the user changes).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    actor_provider = models.CharField(max_length=200, blank=True)
    actor_issuer = models.CharField(max_length=500, blank=True)
    actor_subject = models.CharField(max_length=255, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    actor_name = models.CharField(max_length=255, blank=True)
    # What.
    secret = models.CharField(max_length=512, blank=True, db_index=True)
    environment = models.CharField(max_length=255, blank=True)
    service = models.CharField(max_length=255, blank=True)
    key = models.CharField(max_length=255, blank=True)
    fingerprint_before = models.CharField(max_length=64, blank=True)
    fingerprint_after = models.CharField(max_length=64, blank=True)
    base_version = models.CharField(max_length=64, blank=True)
    new_version = models.CharField(max_length=64, blank=True)
    change_request = models.BigIntegerField(null=True, blank=True)
    attempt = models.BigIntegerField(null=True, blank=True)  # seq of the "attempted" event
    error_code = models.CharField(max_length=100, blank=True)
    detail = models.JSONField(default=dict, blank=True)  # names, counts, messages; no values
    # Where from.
    client_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Chain.
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["secret", "seq"]),
            models.Index(fields=["actor", "seq"]),
            models.Index(fields=["attempt"]),
            models.Index(fields=["outcome", "created"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.outcome} {self.secret}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditEventImmutable()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditEventImmutable()

    @property
    def action_label(self) -> str:
        """``sign in``, ``change request approve``: the action for people."""
        return self.action.replace("_", " ")


class ChangeRequest(models.Model):
    """A proposed changeset for a protected environment, waiting for a second person's approval.

    Metadata only, no value: the proposed document lives in Secrets Manager as version
    ``staged_version`` carrying the label ``label`` (``CR-<id>``). ``structure`` holds the
    changeset's ops and cell names, never values: the values of ``set`` edits are read back from
    the staged version when the request is applied. ``cells`` is the per-cell summary at proposal
    time: ``{"environment", "service", "key", "status", "before", "after"}`` with full
    fingerprints. A request is immutable once opened: only ``status`` and its bookkeeping move.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"  # approvals complete, being applied
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        APPLIED = "applied"
        CONFLICTED = "conflicted"
        EXPIRED = "expired"
        BYPASSED = "bypassed"  # applied by a break-glass admin without approval

    secret = models.CharField(max_length=512, db_index=True)
    environments = models.JSONField(default=list)
    base_version = models.CharField(max_length=64)
    staged_version = models.CharField(max_length=64, blank=True)
    label = models.CharField(max_length=64, blank=True)
    change_id = models.CharField(max_length=64, db_index=True)
    cells = models.JSONField(default=list)
    structure = models.JSONField(default=list)
    # Who proposed it (copied, so the row stays meaningful if the user changes or goes).
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="change_requests",
    )
    author_username = models.CharField(max_length=150)
    author_email = models.CharField(max_length=254, blank=True)
    author_name = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    required_approvals = models.PositiveSmallIntegerField(default=1)
    expires_at = models.DateTimeField(db_index=True)
    applied_version = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True)  # the author's, at proposal time
    outcome_message = models.TextField(blank=True)  # why it ended (a conflict's cells, by name)
    bypass_reason = models.TextField(blank=True)
    bypass_acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    bypass_acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["secret", "change_id"], name="one_request_per_change")
        ]

    def __str__(self) -> str:
        return f"change request #{self.pk} on {self.secret} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def author_label(self) -> str:
        name = self.author_name or self.author_username
        return f"{name} <{self.author_email}>" if self.author_email else name


class Approval(models.Model):
    """One approver's vote on a change request: approve or reject, with a comment. One per
    approver (the database refuses a second); the author never has one (secrets_admin.changes.change_requests refuses)."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver_username = models.CharField(max_length=150)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="one_vote_per_approver")
        ]

    def __str__(self) -> str:
        return f"{self.approver_username} {self.decision}s #{self.request_id}"

    @property
    def decided(self) -> str:
        """The vote in the past tense for pages and e-mails: ``approved`` or ``rejected``."""
        return "rejected" if self.decision == self.Decision.REJECT else "approved"


# --- Audit devices (README "Audit you can prove"): the outbox and each device's progress.


class AuditOutbox(models.Model):
    """One audit event not yet delivered to every audit device (the transactional outbox).

    Inserted in the transaction that appends the event (``audit.record``), so an event and its
    delivery duty exist together or not at all; removed once every device has it
    (``audit_devices.ship``). ``created`` is the event's time: the oldest row gives the lag
    that ``PORTAL_AUDIT_MAX_LAG`` bounds.
    """

    seq = models.BigIntegerField(primary_key=True)
    created = models.DateTimeField()

    def __str__(self) -> str:
        return f"audit event #{self.seq} to ship"


class AuditDeviceCursor(models.Model):
    """How far one audit device (or the anchor sink, ``name="anchor"``) has got: the last
    ``seq`` delivered (or anchored), when, and the last delivery error (a sentence, no value)."""

    name = models.CharField(max_length=200, primary_key=True)
    seq = models.BigIntegerField(default=0)
    updated = models.DateTimeField()
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"audit device {self.name} at #{self.seq}"


# --------------------------------------------------------------------------------------------
# The hygiene index: every secret of the account, its cells' types and fingerprints (no values)


class IndexedSecret(models.Model):
    """One secret of the account as the hygiene index last saw it. Never holds a value.

    Metadata comes from ``ListSecrets`` (every secret, legacy ones included); ``version_id`` and
    ``layout`` from the last read of a unified secret's ``AWSCURRENT`` version (``version_id``
    is "" until then). ``layout`` is ``{environment: {service: number of keys}}`` so the service
    matrix answers from one row per secret. ``pending_versions`` are versions labelled
    ``AWSPENDING`` but not ``AWSCURRENT`` (a rotation that never finished).
    """

    name = models.CharField(max_length=512, unique=True)
    unified = models.BooleanField(default=False, db_index=True)
    version_id = models.CharField(max_length=64, blank=True)
    version_created = models.DateTimeField(null=True, blank=True)
    last_changed = models.DateTimeField(null=True, blank=True)  # ListSecrets' LastChangedDate
    kind = models.CharField(max_length=20, blank=True)  # documents.Kind; "" when not read
    environments = models.JSONField(default=list)
    layout = models.JSONField(default=dict)
    rotation_enabled = models.BooleanField(default=False)
    next_rotation = models.DateTimeField(null=True, blank=True)
    pending_versions = models.JSONField(default=list)
    deleted_date = models.DateTimeField(null=True, blank=True)  # scheduled for deletion
    owning_service = models.CharField(max_length=100, blank=True)
    read_error = models.CharField(max_length=500, blank=True)  # why the last read failed
    indexed_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IndexCell(models.Model):
    """One cell of an indexed secret's current version: type and fingerprint, never the value.

    ``credential`` is true for non-empty strings whose key is not configuration
    (``PORTAL_NOT_CREDENTIAL_KEYS``); reuse and staleness look at those only. A secret scheduled
    for deletion keeps its row in :class:`IndexedSecret` but no cells. ``changed_at`` is
    when the cell took its present value and ``changed_how`` how that is known (see
    ``index.ChangedHow``); ``changed_version`` the version that brought it, ``changed_by`` the
    portal user who saved it (from the audit log) when the portal did.
    """

    secret = models.ForeignKey(IndexedSecret, on_delete=models.CASCADE, related_name="cells")
    version_id = models.CharField(max_length=64)
    environment = models.CharField(max_length=255)
    service = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    value_type = models.CharField(max_length=10)
    fingerprint = models.CharField(max_length=64)
    empty = models.BooleanField(default=False)
    credential = models.BooleanField(default=False)
    # Another credential cell holds the same fingerprint: kept by index.py at every write, so
    # the reuse page reads the few shared cells instead of grouping every cell.
    shared = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_how = models.CharField(max_length=20, blank=True)
    changed_version = models.CharField(max_length=64, blank=True)
    changed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["secret", "environment", "service", "key"], name="one_index_cell"
            )
        ]
        # Partial indexes: each page's filter (a boolean column) matches one index's condition,
        # so it reads a small range instead of every cell (hygiene_bench: 120,000 cells).
        indexes = [
            models.Index(fields=["fingerprint"], name="index_cell_fingerprint"),
            models.Index(
                fields=["fingerprint"], condition=models.Q(shared=True), name="index_cell_shared"
            ),
            models.Index(
                fields=["secret"], condition=models.Q(empty=True), name="index_cell_empty"
            ),
            models.Index(
                fields=["environment", "changed_at", "secret"],  # covers counts per secret
                condition=models.Q(credential=True),
                name="index_cell_age",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.environment}/{self.service}/{self.key}"

    @property
    def place(self) -> str:
        """``environment/service/key``: how pages and findings name the cell."""
        return f"{self.environment}/{self.service}/{self.key}"
