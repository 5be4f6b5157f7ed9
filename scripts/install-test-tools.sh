#!/usr/bin/env bash
# System tools the test suite drives for real: PgBouncer (transaction pooler tests), Debian's
# PostgreSQL 15 with pgTAP, and pg_prove (the DBA's SQL tests in db/tests/ run on their own
# PostgreSQL 15 server, see tests/test_pgtap.py), and Chromium (tests/e2e: the demo page in a
# real browser, driven by Playwright through /usr/bin/chromium; Playwright never downloads one).
# Installed from Debian's packages when missing and we are root (as in CI); otherwise the
# tests that need them say what is missing. Also the npm packages of the Better Auth identity
# provider the tests start (tests/identity_provider), from its lock file, when Node.js is here.
set -euo pipefail

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && [ ! -d tests/identity_provider/node_modules/better-auth ]; then
    echo "installing tests/identity_provider's npm packages with npm ci"
    (cd tests/identity_provider && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v pg_prove >/dev/null 2>&1 || missing+=(libtap-parser-sourcehandler-pgtap-perl)
# tests/test_pgtap.py starts its own server from Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin), with pgTAP.
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/pgtap.control ] || missing+=(postgresql-15-pgtap)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing ${missing[*]} (needs root and apt-get); tests that need them will say so" >&2
    exit 0
fi
echo "installing ${missing[*]} with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged service; the tests run their own instances.
if command -v service >/dev/null 2>&1; then
    service pgbouncer stop >/dev/null 2>&1 || true
    service postgresql stop >/dev/null 2>&1 || true
fi
