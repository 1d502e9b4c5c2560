"""Demo data: the standard's own example secrets (fake values), a legacy and a malformed secret,
and one local user per role. Used by ``manage.py demo`` and by the tests' fixtures."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model

from . import aws, listing
from .permissions import Role, set_role

DEMO_USERS: dict[str, Role] = {
    "engineer": Role.ENGINEER,
    "approver": Role.APPROVER,
    "auditor": Role.AUDITOR,
    "admin": Role.ADMIN,
    "outsider": Role.NONE,
}


def _standard_document(repo: str) -> dict[str, Any]:
    """The standard's "Real-World Example" with obviously fake values, per environment."""
    doc: dict[str, Any] = {}
    for env, stripe_mode, prefix in (
        ("sandbox", "test", "sandbox"),
        ("dev", "test", "dev"),
        ("main", "live", "prod"),
    ):
        doc[env] = {
            "databricks": {
                "server_hostname": "adb-1234567890.azuredatabricks.net",
                "oauth_url": "https://adb-1234567890.azuredatabricks.net/oidc",
                "client_id": f"{prefix}-client-id",
                "client_secret": f"FAKE-{repo}-{prefix}-client-secret",
                "endpoint_name": f"{prefix}-endpoint",
            },
            "stripe": {
                "public_key": f"pk_{stripe_mode}_FAKE{repo[:4]}{prefix}",
                "secret_key": f"sk_{stripe_mode}_FAKE{repo[:4]}{prefix}",
                "webhook_secret": f"whsec_FAKE{prefix}",
            },
        }
    return doc


def demo_secrets() -> dict[str, str | None]:
    """Name -> SecretString (``None``: created without a value) of every demo secret."""
    secrets: dict[str, str | None] = {}
    for repo in ("transportation-insights", "project-management", "customer-portal"):
        secrets[f"{repo}-secrets"] = json.dumps(_standard_document(repo), indent=2)
    cp = json.loads(secrets["customer-portal-secrets"] or "{}")
    cp["uat"] = {"stripe": {"public_key": "pk_test_FAKEuat", "secret_key": "sk_test_FAKEuat"}}  # nosec # B105 accepted: a fake demo value
    cp["dev"]["feature_flags"] = {"max_retries": 3, "beta": True, "regions": ["eu", "us"]}
    cp["main"]["stripe"].pop("webhook_secret")
    secrets["customer-portal-secrets"] = json.dumps(cp, indent=2)
    # Breaks the standard: a dotenv file pasted as the value.
    secrets["billing-service-secrets"] = "DATABASE_URL=postgres://fake:fake@db/billing\nDEBUG=1\n"
    # Breaks the standard: environments hold strings.
    secrets["inventory-api-secrets"] = json.dumps({"dev": "FAKE-flat-value", "main": {"db": 1}})
    # Created without a value yet.
    secrets["new-repo-secrets"] = None
    # Legacy per-service/per-environment secrets and others that must not be listed.
    secrets["transportation-insights-databricks-sandbox"] = json.dumps(
        {"client_id": "legacy-client-id", "client_secret": "FAKE-legacy-client-secret"}  # nosec # B105 accepted: a fake demo value
    )
    secrets["project-management-stripe-main"] = json.dumps({"secret_key": "sk_live_FAKElegacy"})  # nosec # B105 accepted: a fake demo value
    secrets["shared/rds-master-password"] = "FAKE-rds-password"
    return secrets


def seed() -> list[str]:
    """Create every demo secret through the normal AWS API (CreateSecret only, so the write path
    is never mixed with plain PutSecretValue); skip ones that exist. Returns the names created."""
    created = []
    for name, text in demo_secrets().items():
        try:
            aws.create_secret(
                name, text=text, description=_describe(name), tags={"portal-demo": "true"}
            )
            created.append(name)
        except aws.AwsError as exc:
            if exc.code != "ResourceExistsException":
                raise
    listing.invalidate()
    return created


def _describe(name: str) -> str:
    if name.endswith("-secrets"):
        return f"Unified secrets for {name.removesuffix('-secrets')} - all environments"
    return "Legacy secret (one per service/environment): migrate into the unified secret"


def create_users() -> None:
    """One local user per role, password = username (demo mode only)."""
    user_model = get_user_model()
    for username, role in DEMO_USERS.items():
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@demo.invalid"}
        )
        if created:
            user.set_password(username)
            user.save()
        set_role(user, [role] if role is not Role.NONE else [])


def seed_change_request() -> int | None:
    """One open change request on ``customer-portal-secrets`` by ``engineer`` (a main value),
    so the approval flow can be tried at once: sign in as ``approver`` and approve it. Returns
    its id. Call after :func:`seed` and :func:`create_users`."""
    from . import audit, changesets, documents
    from .changes import change_requests, protocol

    name = "customer-portal-secrets"
    engineer = get_user_model().objects.get(username="engineer")
    current = aws.read_current(name)
    main = documents.parse(current.text or "{}")["main"]
    service = next(iter(main))
    key = next(iter(main[service]))
    cr = change_requests.change_request_propose(
        name=name,
        base_version_id=current.version_id,
        changeset=[changesets.Edit("set", "main", service, key, "FAKE-rotated-demo-value")],
        context=audit.Context(user=engineer),
        change_id=protocol.new_change_id(
            user=engineer, name=name, base_version_id=current.version_id
        ),
        comment="Demo: rotate one production value.",
    )
    return cr.pk


#: The demo's audit devices (README "Audit you can prove"): a file next to the database and an
#: Object-Lock bucket in the in-process moto server, anchored every few events.
DEMO_AUDIT_BUCKET = "secrets-portal-demo-audit"
DEMO_ANCHOR_EVERY = 5


def start_audit_devices(audit_file: str) -> list[str]:
    """Point the audit devices at ``audit_file`` and at moto's S3 (bucket created with Object
    Lock on, retention ``COMPLIANCE`` one day), anchoring there every
    :data:`DEMO_ANCHOR_EVERY` events, unless ``PORTAL_AUDIT_DEVICES`` was set. Call once moto
    runs. Returns the devices and the anchor sink, for the console."""
    import boto3
    from django.conf import settings

    if settings.PORTAL_AUDIT_DEVICES:
        return [*settings.PORTAL_AUDIT_DEVICES, settings.PORTAL_AUDIT_ANCHORS]
    s3 = boto3.client("s3", region_name=settings.AWS_REGION)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if DEMO_AUDIT_BUCKET not in existing:
        s3.create_bucket(Bucket=DEMO_AUDIT_BUCKET, ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket=DEMO_AUDIT_BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
    settings.PORTAL_AUDIT_DEVICES = [f"file:{audit_file}", f"s3:{DEMO_AUDIT_BUCKET}/events"]
    settings.PORTAL_AUDIT_ANCHORS = f"s3:{DEMO_AUDIT_BUCKET}/chain"
    settings.PORTAL_AUDIT_ANCHOR_EVERY = DEMO_ANCHOR_EVERY
    settings.PORTAL_AUDIT_ANCHOR_RETENTION_DAYS = 1
    return [*settings.PORTAL_AUDIT_DEVICES, settings.PORTAL_AUDIT_ANCHORS]
