// A certified OpenID Connect provider (panva/oidc-provider) on loopback, for the tests only.
// Its development login form accepts any login with any password: the login typed is the
// account, and its email. A login starting with "unverified" gets email_verified: false; one
// starting with "entra." is answered as Microsoft Entra ID does: no email_verified, but the
// optional claim xms_edov (the email's domain is verified by the account's tenant) true.
//
// node provider.mjs <port> <client JSON> [userinfo-only] [iss=omit|iss=omit-advertised]
// [listen-fd=<fd>]; prints "ready <issuer>" once it listens (on the socket the caller bound to
// <port> and handed over as <fd>, if given: then no other process can take the port first). With "userinfo-only" the email claims are in the
// userinfo answer, not the ID token (what the specification asks when an access token is
// issued too). The provider names itself in its authorization responses (`iss`, RFC 9207) and
// says so in its discovery document; "iss=omit" makes it a provider that does neither (as many
// do), "iss=omit-advertised" one that still says it does.
import Provider from 'oidc-provider';

const [port, clientJson, ...options] = process.argv.slice(2);
const mode = options.includes('userinfo-only') ? 'userinfo-only' : '';
const issMode = (options.find((option) => option.startsWith('iss=')) || '').slice(4);
const listenFd = (options.find((option) => option.startsWith('listen-fd=')) || '').slice(10);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(clientJson);

const provider = new Provider(issuer, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified', 'xms_edov'] },
  // By default email and email_verified are in the ID token, as Google and Keycloak send them.
  conformIdTokenClaims: mode === 'userinfo-only',
  cookies: { keys: ['tests-only-not-a-secret'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        if (id.startsWith('entra.')) return { sub: id, email: id, xms_edov: true };
        return { sub: id, email: id, email_verified: !id.startsWith('unverified') };
      },
    };
  },
  // First-party client: no consent screen, the grant is given at sign-in.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email');
    await grant.save();
    return grant;
  },
});

// One line per token request, so that a test can tell a code was never sent here.
provider.use(async (ctx, next) => {
  if (ctx.path === '/token') console.log(`token request ${ctx.method}`);
  await next();
});

if (issMode) {
  provider.use(async (ctx, next) => {
    await next();
    if (issMode === 'omit' && ctx.path === '/.well-known/openid-configuration') {
      delete ctx.body.authorization_response_iss_parameter_supported;
    }
    const location = ctx.response.get('location');
    if (location && client.redirect_uris.some((uri) => location.startsWith(uri))) {
      const answer = new URL(location);
      answer.searchParams.delete('iss');
      ctx.set('location', answer.href);
    }
  });
}

const where = listenFd ? [{ fd: Number(listenFd) }] : [Number(port), '127.0.0.1'];
const server = provider.listen(...where, () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
