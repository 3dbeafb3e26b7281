// A real OpenID Connect provider for the sign-in tests: panva's oidc-provider (npm), on
// 127.0.0.1 and a free port, issuer http://127.0.0.1:<port>. Started by tests/auth/oidc_server.py:
//
//   node provider.js ACCOUNTS_JSON CLIENT_ID REDIRECT_URI [REDIRECT_URI ...]
//
// ACCOUNTS_JSON is read at every sign-in (a test changes a person's groups by rewriting it):
//   {"ada": {"password": "...", "name": "Ada Lovelace", "email": "...", "groups": ["students"]}}
// The portal's client must use PKCE (S256): a public client, or a confidential one
// (client_secret_basic) when OIDC_TEST_CLIENT_SECRET is set; a second, public client
// (campus-library, the same redirect URIs) is another application of the campus; the device
// authorization grant (RFC 8628) is on. The provider's own log-in page checks the account's
// password and has a Cancel link (error=access_denied). Consent is given for the portal (and
// the other client), first-party clients.
// Once listening, one JSON line goes to stdout: {"issuer": "http://127.0.0.1:<port>"}.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider from 'oidc-provider';

const [accountsFile, clientId, ...redirectUris] = process.argv.slice(2);
if (!accountsFile || !clientId || redirectUris.length === 0) {
  process.stderr.write('usage: node provider.js ACCOUNTS_JSON CLIENT_ID REDIRECT_URI...\n');
  process.exit(2);
}

const clientSecret = process.env.OIDC_TEST_CLIENT_SECRET || '';
const accounts = () => JSON.parse(readFileSync(accountsFile, 'utf8'));
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const SCOPES = 'openid profile email groups offline_access';
const OTHER_CLIENT_ID = 'campus-library';

function configuration() {
  return {
    clients: [{
      client_id: clientId,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: [
        'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code',
      ],
      ...(clientSecret
        ? { client_secret: clientSecret, token_endpoint_auth_method: 'client_secret_basic' }
        : { token_endpoint_auth_method: 'none' }),
    }, {
      // Another application of the campus (a public client, same return addresses): its ID
      // tokens are signed by the same keys, but are not for the portal (audience).
      client_id: OTHER_CLIENT_ID,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'none',
    }],
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: SCOPES.split(' '),
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
    },
    cookies: { keys: ['campus-portal-tests-only'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const account = accounts()[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          const [given, ...family] = account.name.split(' ');
          return {
            sub: id,
            preferred_username: id,
            name: account.name,
            given_name: given,
            family_name: family.join(' '),
            email: account.email,
            email_verified: true,
            groups: account.groups,
          };
        },
      };
    },
    // The portal is the campus's own application: no consent page.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(SCOPES);
      await grant.save();
      return grant;
    },
  };
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
</head><body><main><h1>Campus Identity Provider</h1>${body}</main></body></html>`;
}

function loginForm(uid, problem) {
  return page('Sign in', `
<form method="post" action="/interaction/${uid}/login">
  ${problem ? `<p role="alert">${escape(problem)}</p>` : ''}
  <label>Campus username <input name="login" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" required></label>
  <button type="submit">Sign in to campus</button>
</form>
<p><a href="/interaction/${uid}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(provider, req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const account = accounts()[login];
    if (!account || account.password !== form.get('password')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginForm(uid, 'Wrong username or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  if (details.prompt.name === 'login') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(loginForm(uid, ''));
    return;
  }
  // Consent for the first-party portal (loadExistingGrant grants it): straight on.
  await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
}

// With OIDC_TEST_TLS_CERT and OIDC_TEST_TLS_KEY (PEM files): served over TLS, issuer
// https://127.0.0.1:<port>, with a certificate of a test CA (a campus CA the portal must trust).
const tls = process.env.OIDC_TEST_TLS_CERT
  ? {
    cert: readFileSync(process.env.OIDC_TEST_TLS_CERT),
    key: readFileSync(process.env.OIDC_TEST_TLS_KEY),
  }
  : null;
const server = tls ? https.createServer(tls) : http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, req, res).catch((error) => {
        res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page('Sign-in problem', `<p>${escape(error.message)}</p>`));
      });
      return;
    }
    handle(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
