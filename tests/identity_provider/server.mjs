// A real Better Auth identity provider for the test suite: email and password sign-up/sign-in
// and the JWT plugin (GET /api/auth/token, GET /api/auth/jwks), on a plain Node http server,
// with Better Auth's in-memory adapter (nothing persists, no native dependency, no network).
//
// Environment:
//   PORT                            port to listen on; 0 (the default) picks a free one
//   HOST                            interface to listen on (default 127.0.0.1)
//   BASE_URL                        public base URL (default http://127.0.0.1:<port>); JWTs carry
//                                   its origin as `iss` and `aud`
//   BETTER_AUTH_SECRET              encrypts the private keys at rest and signs the session
//                                   cookies (a fixed, test-only default)
//   JWKS_ROTATION_INTERVAL_SECONDS  jwt plugin `jwks.rotationInterval` (default: never rotate)
//   JWKS_GRACE_PERIOD_SECONDS       jwt plugin `jwks.gracePeriod` (Better Auth's default: 30 days)
//   JWT_KEY_ALG                     jwt plugin `jwks.keyPairConfig.alg` (default EdDSA, Ed25519)
//   SLIM_PAYLOAD=1                  `jwt.definePayload` returns {}: the token carries only the
//                                   registered claims (sub, iat, exp, iss, aud), not the user's
//                                   name, email, etc. that the plugin puts there by default
//
// Prints exactly one line to stdout once it accepts connections:
//   better-auth listening on <base url>
// Better Auth's own log goes to stderr. Serves until SIGTERM or SIGINT, then exits 0.

import http from "node:http";

// Set before Better Auth is loaded (hence the dynamic imports): no telemetry, ever.
process.env.BETTER_AUTH_TELEMETRY = "0";

const { betterAuth } = await import("better-auth");
const { memoryAdapter } = await import("better-auth/adapters/memory");
const { toNodeHandler } = await import("better-auth/node");
const { jwt } = await import("better-auth/plugins");

const TEST_SECRET = "taskapi-test-identity-provider-secret-0123456789abcdef";

function optionalSeconds(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of seconds, got ${raw}`);
  return value;
}

const rotationInterval = optionalSeconds("JWKS_ROTATION_INTERVAL_SECONDS");
const gracePeriod = optionalSeconds("JWKS_GRACE_PERIOD_SECONDS");
const keyAlg = process.env.JWT_KEY_ALG || undefined;
const slimPayload = process.env.SLIM_PAYLOAD === "1";

let handler = (_req, res) => {
  res.writeHead(503).end();
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once("error", reject);
  server.listen(Number(process.env.PORT || 0), process.env.HOST || "127.0.0.1", resolve);
});
const { port } = server.address();
const baseURL = (process.env.BASE_URL || `http://127.0.0.1:${port}`).replace(/\/+$/, "");

const jwks = {};
if (rotationInterval !== undefined) jwks.rotationInterval = rotationInterval;
if (gracePeriod !== undefined) jwks.gracePeriod = gracePeriod;
if (keyAlg !== undefined) jwks.keyPairConfig = { alg: keyAlg };

const auth = betterAuth({
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET || TEST_SECRET,
  trustedOrigins: [new URL(baseURL).origin],
  database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
  emailAndPassword: { enabled: true },
  plugins: [
    jwt({
      jwks,
      ...(slimPayload ? { jwt: { definePayload: () => ({}) } } : {}),
    }),
  ],
  // Tests sign many users in from one address within a second.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  logger: {
    level: "warn",
    disableColors: true,
    log: (level, message, ...args) => console.error(`[better-auth] ${level.toUpperCase()} ${message}`, ...args),
  },
});
handler = toNodeHandler(auth);

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);

process.stdout.write(`better-auth listening on ${baseURL}\n`);
