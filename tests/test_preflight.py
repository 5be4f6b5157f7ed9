"""The server refuses to start where isolation would not hold, and says what to fix."""

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.ops.preflight import PreflightError
from tests.support.app import make_settings
from tests.support.database import url_for


def start(url: str) -> None:
    with TestClient(create_app(make_settings(url))):
        pass


def test_starts_on_the_migrated_database(app_url):
    start(app_url)


def test_starts_when_logging_in_as_a_superuser(admin_url):
    start(admin_url)  # the prologue switches to app_user, so this is safe


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("alter table tasks disable row level security", "ENABLE ROW LEVEL SECURITY"),
        ("alter table tasks no force row level security", "FORCE ROW LEVEL SECURITY"),
        ("alter table tasks owner to app_user", "owns tasks"),
        ("alter table lists no force row level security", "FORCE ROW LEVEL SECURITY"),
        ("alter table lists disable row level security", "ENABLE ROW LEVEL SECURITY"),
        ("update alembic_version set version_num = 'elsewhere'", "run `taskapi migrate`"),
    ],
)
def test_refuses_an_unsafe_database(app_url, admin, breakage, message):
    admin.execute(breakage)
    with pytest.raises(PreflightError, match=message):
        start(app_url)


def test_refuses_a_bypassrls_app_role(app_url, admin):
    admin.execute("alter role app_user bypassrls")
    try:
        with pytest.raises(PreflightError, match="BYPASSRLS"):
            start(app_url)
    finally:
        admin.execute("alter role app_user nobypassrls")


def test_refuses_an_unmigrated_database(pg_template):
    maintenance = url_for(host=pg_template.host, port=pg_template.port, user="postgres", dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute("drop database if exists taskapi_bare")
        conn.execute("create database taskapi_bare")
    try:
        bare = url_for(host=pg_template.host, port=pg_template.port, user="postgres", dbname="taskapi_bare")
        with pytest.raises(PreflightError, match="run `taskapi migrate`"):
            start(bare)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute("drop database taskapi_bare with (force)")


def test_refuses_a_login_role_that_cannot_become_app_user(admin, pg_template):
    admin.execute("drop role if exists taskapi_stranger")
    admin.execute("create role taskapi_stranger login")
    try:
        url = url_for(host=pg_template.host, port=pg_template.port, user="taskapi_stranger", dbname=admin.info.dbname)
        with pytest.raises(PreflightError, match="GRANT app_user TO"):
            start(url)
    finally:
        admin.execute("drop role taskapi_stranger")
