"""A correction to moto's fake Secrets Manager, applied where the demo and the tests start moto.

Never imported by the portal itself (the gateway talks to real AWS the same way it talks to
moto); only ``manage.py demo`` and ``tests/conftest.py`` call :func:`apply` before they start
their in-process ``ThreadedMotoServer``.

What moto gets wrong (moto 5.x): a secret remembers "the version a request without
``VersionId``/``VersionStage`` returns" in ``FakeSecret.default_version_id``, and only
``PutSecretValue``/``CreateSecret`` with the ``AWSCURRENT`` label update it.
``UpdateSecretVersionStage`` moves the ``AWSCURRENT`` label but leaves ``default_version_id`` on
the old version. So after the portal's save (stage a version, then move ``AWSCURRENT`` to it;
README "How a save works"):

* a stage-less ``GetSecretValue`` - what the standard's apps and ``aws secretsmanager
  get-secret-value`` send - returns the *old* value;
* a later ``PutSecretValue`` demotes the wrong version to ``AWSPREVIOUS`` and leaves two versions
  labelled ``AWSCURRENT``.

Real AWS has no such second pointer: the version labelled ``AWSCURRENT`` *is* the default (AWS
API reference, GetSecretValue: "If you don't specify either a VersionStage or VersionId, then
the default is to perform the operation on the version with the VersionStage value of
AWSCURRENT"). The fix makes moto agree: after every ``UpdateSecretVersionStage`` the default
version is the one that carries ``AWSCURRENT``.
"""

from __future__ import annotations

import functools
from typing import Any

CURRENT = "AWSCURRENT"

_APPLIED_FLAG = "_secrets_portal_default_follows_awscurrent"


def apply() -> None:
    """Patch moto's Secrets Manager backend in this process; calling it again does nothing.

    Must run in the process that serves moto (``ThreadedMotoServer`` serves from a thread of the
    caller's process, so the backend objects it uses are the patched ones).
    """
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, _APPLIED_FLAG, False):
        return

    @functools.wraps(original)
    def update_secret_version_stage(
        self: SecretsManagerBackend, secret_id: str, version_stage: str, *args: Any, **kwargs: Any
    ) -> tuple[str, str]:
        result = original(self, secret_id, version_stage, *args, **kwargs)
        if version_stage == CURRENT:
            secret = self.secrets[secret_id]
            if not isinstance(secret, FakeSecret):  # a replica: moto refuses writes to it
                return result
            holders = [
                v for v, data in secret.versions.items() if CURRENT in data["version_stages"]
            ]
            if holders:
                secret.default_version_id = holders[0]
        return result

    setattr(update_secret_version_stage, _APPLIED_FLAG, True)
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]
