"""Write use cases, one module per flow (callers import the flow they use):

* :mod:`.protocol` - the write protocol (README "How a save works"): read a version, the request token, the
  compare-and-swap run, and :func:`.protocol.save_changeset`, the one save every flow goes through;
* :mod:`.editor` - the editor's intent -> changeset, and :func:`.editor.secret_save_changes`,
  the one entry point of an edit (a direct save, or a change request for a protected environment);
* :mod:`.preview` - the reviews (edit, restore, environment copy): nothing is written;
* :mod:`.restore` - restore one environment to an older version's content;
* :mod:`.environment_copy` - copy rows from one environment to another;
* :mod:`.bulk_paste` - a ``.env`` file or JSON object pasted into one environment, previewed;
* :mod:`.comparison` - comparisons of typed values with stored ones (audited, budgeted);
* :mod:`.lifecycle` - create a secret, cancel its deletion, schedule a legacy secret's deletion;
* :mod:`.migration` - the migration wizard (legacy secrets and ``.env`` files);
* :mod:`.change_requests` - the decisions: propose, approve, reject, cancel, bypass, acknowledge,
  apply again;
* :mod:`.change_request_apply` - what lands when a request is approved (promote, rebase, or
  conflicted) and the expiry of requests nobody decided in time.

Refusals are :class:`secrets_admin.errors.PortalError` subclasses; read-only queries live in
:mod:`secrets_admin.reads`.
"""
