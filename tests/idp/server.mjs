// Loopback-only OpenID Connect provider for the Secrets Portal test suite.
//
// NEVER use this in production: it accepts any username/password (devInteractions),
// keeps everything in memory and generates a throw-away signing key on every start.
//
// Usage:
//   IDP_REDIRECT_URIS=http://127.0.0.1:8000/accounts/oidc/corp/login/callback/ \
//   IDP_USERS_FILE=/tmp/users.json node server.mjs [port]
//
// Configuration (argv wins over env):
//   argv[2] | IDP_PORT   TCP port on 127.0.0.1; 0 (default) = pick a free port.
//   IDP_ISSUER           issuer URL; default http://127.0.0.1:<actual port>.
//   IDP_REDIRECT_URIS    comma-separated redirect URIs of the `portal` client (required).
//   IDP_USERS_FILE       JSON file {"alice": {"email": ..., "name": ..., "groups": [...]}, ...};
//                        re-read on every claims() call. Missing file/unset = no known users.
//   IDP_CLIENT_ID        default "portal";  IDP_CLIENT_SECRET  default "portal-secret".
//   IDP_REQUIRE_PKCE     "1" (default): the confidential client must use PKCE (S256); "0": optional.
//   IDP_FORCE_LOGIN      "1" (default): every authorization request shows the login form, even
//                        when an IdP session cookie exists (lets one HTTP session log in as
//                        several users in a row); "0": normal SSO session reuse.
//   IDP_WATCH_STDIN      "1": exit when stdin reaches EOF (the harness uses this so that the
//                        provider dies with the Python process that started it).
//
// On success prints exactly one line `READY <issuer>` to stdout. Warnings and errors go to stderr.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { interactionPolicy } from 'oidc-provider';

const env = process.env;

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

const portArg = process.argv[2] ?? env.IDP_PORT ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535 || String(port) !== String(portArg).trim()) {
  fail(`invalid port ${JSON.stringify(portArg)}`);
}

const redirectUris = (env.IDP_REDIRECT_URIS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (redirectUris.length === 0) {
  fail('IDP_REDIRECT_URIS is required (comma-separated list of redirect URIs)');
}

const usersFile = env.IDP_USERS_FILE || undefined;
const clientId = env.IDP_CLIENT_ID || 'portal';
const clientSecret = env.IDP_CLIENT_SECRET || 'portal-secret';
const requirePkce = (env.IDP_REQUIRE_PKCE ?? '1') !== '0';
const forceLogin = (env.IDP_FORCE_LOGIN ?? '1') !== '0';

// Users are re-read on every call so tests can rewrite the file between two logins.
function loadUsers() {
  if (!usersFile) return {};
  let text;
  try {
    text = readFileSync(usersFile, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw err;
  }
  const data = JSON.parse(text);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new Error(`${usersFile}: top level must be a JSON object keyed by username`);
  }
  return data;
}

// Claims for `sub`:
// * user present in the file: its entry is passed through verbatim (so `"groups": "not-a-list"`
//   or a missing `groups` key reach the client exactly like that); `email_verified` defaults to
//   true when the entry has an `email` and no `email_verified`.
// * user absent from the file: email <sub>@example.test (verified), name <sub>, groups [].
function claimsFor(sub) {
  const users = loadUsers();
  if (Object.prototype.hasOwnProperty.call(users, sub)) {
    const entry = users[sub] ?? {};
    const claims = { ...entry, sub };
    if ('email' in entry && !('email_verified' in entry)) claims.email_verified = true;
    return claims;
  }
  return {
    sub, email: `${sub}@example.test`, email_verified: true, name: sub, groups: [],
  };
}

// Fresh signing key per start: avoids the "dev keys" warning and anything long-lived.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }), kid: `test-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256',
};

const policy = interactionPolicy.base();
if (forceLogin) {
  // Behaves like prompt=login on every request: unless the login prompt was resolved in this
  // very interaction, ask for it. (`oidc.result` holds the results of the current interaction.)
  policy.get('login').checks.add(new interactionPolicy.Check(
    'test_idp_force_login',
    'the test IdP asks for credentials on every authorization request',
    (ctx) => (ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT),
  ));
}

function buildConfiguration() {
  return {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      // A client registered with client_secret_basic is also accepted with client_secret_post
      // (oidc-provider lib/shared/client_auth.js treats the two as one family).
      token_endpoint_auth_method: 'client_secret_basic',
      post_logout_redirect_uris: redirectUris.map((u) => new URL('/', u).href),
    }],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // Put scope-requested claims (email, name, groups) in the ID token as well as userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: {
      required: () => requirePkce,
    },
    interactions: { policy },
    jwks: { keys: [signingJwk] },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
      // secure is only set by oidc-provider when the request itself is https, so plain
      // http://127.0.0.1 works without `proxy` tricks.
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims(/* use, scope, claims, rejected */) {
          return claimsFor(sub);
        },
      };
    },
  };
}

const server = createServer();
server.on('error', (err) => fail(`listen failed: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = env.IDP_ISSUER || `http://127.0.0.1:${actualPort}`;
  let provider;
  try {
    provider = new Provider(issuer, buildConfiguration());
  } catch (err) {
    fail(`provider configuration failed: ${err.stack ?? err}`);
  }
  const logError = (event) => (...args) => {
    const err = args.find((a) => a instanceof Error);
    process.stderr.write(`idp: ${event}: ${err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}` : ''}\n`);
  };
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
    'end_session.error', 'discovery.error', 'jwks.error']) {
    provider.on(event, logError(event));
  }
  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (env.IDP_WATCH_STDIN === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
