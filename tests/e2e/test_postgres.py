"""A PostgreSQL destination end to end: a real server the test starts and
stops, real dbt-postgres, and the database password kept out of every log,
run record, artifact and file that is not private."""
import json
import os
import stat

import pytest

from conftest import BASE_ENV, DBT, Postgres

PASSWORD = "pg-Secret-7c1e!x"


@pytest.fixture
def postgres():
    pg = Postgres(PASSWORD).start()
    yield pg
    pg.stop()


def add_pg_env(d, repo, pg, name="prod-pg", password=PASSWORD):
    d.ok("project", "add", "shop", "--repo", repo)
    env = dict(BASE_ENV, PGPASS=password)
    d.ok("env", "add", name, "--project", "shop", "--branch", "main", "--destination",
         "postgres", "--host", "127.0.0.1", "--port", pg.port, "--user", "dbt",
         "--password-env", "PGPASS", "--dbname", "analytics", "--schema", "marts",
         "--threads", "2", "--dbt", DBT, env=env)
    d.ok("job", "add", "nightly", "--env", name, "--command", "dbt build")


def assert_secret_nowhere(d, run_id, secret):
    """The password is in no log, no run detail, no artifact, and in no file
    under the state directory that others could read."""
    texts = [d.log(), d.ok("--json", "run", "view", run_id).stdout,
             d.ok("run", "logs", run_id).stdout, d.ok("--json", "env", "view", "prod-pg").stdout]
    for t in texts:
        assert secret not in t
    arts = d.json("run", "artifacts", run_id)
    assert any(a["path"] == "logs/dbt.log" for a in arts), arts
    out = os.path.join(d.root, "artifact.bin")
    for a in arts:  # binary ones too (graph.gpickle): compare bytes
        d.ok("run", "artifact", run_id, a["path"], "--output", out)
        with open(out, "rb") as f:
            assert secret.encode() not in f.read(), a["path"]
    holders = []
    for dirpath, _, files in os.walk(d.state):
        for f in files:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                if secret.encode() in fh.read():
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                    assert mode == 0o600, f"{path} holds the password with mode {oct(mode)}"
                    holders.append(os.path.relpath(path, d.state))
    # only the store keeps it (so dbtd can hand it to the next run)
    assert holders == ["data.mdb"], holders


def test_postgres_destination_builds_and_keeps_the_password_secret(dbtd, repo, postgres):
    add_pg_env(dbtd, repo, postgres)
    env = dbtd.json("env", "view", "prod-pg")
    assert env["destination"]["has_password"] is True
    assert env["destination"]["port"] == postgres.port

    p = dbtd.ctl("--json", "job", "run", "nightly", "--wait")
    assert p.returncode == 0, p.stdout + p.stderr + dbtd.log()
    r = json.loads(p.stdout)
    assert r["status"] == "completed"
    assert [s["status"] for s in r["steps"]] == ["completed"] * 4

    # the tables are in the environment's schema of the real database
    assert postgres.sql("select count(*) from marts.orders", db="analytics") == "500"
    assert postgres.sql("select count(*) from marts.customers", db="analytics") == "100"
    assert postgres.sql("select tableowner from pg_tables where schemaname = 'marts' "
                        "and tablename = 'orders'", db="analytics") == "dbt"
    assert "postgres" in dbtd.ok("run", "logs", r["id"], "--step", "build").stdout.lower()
    assert any(a["path"] == "target/run_results.json"
               for a in dbtd.json("run", "artifacts", r["id"]))
    assert_secret_nowhere(dbtd, r["id"], PASSWORD)


def test_wrong_password_fails_at_dbt_and_is_not_shown(dbtd, repo, postgres):
    wrong = "not-the-Password-3f9"
    add_pg_env(dbtd, repo, postgres, password=wrong)
    p = dbtd.ctl("--json", "job", "run", "nightly", "--wait")
    assert p.returncode == 1, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["status"] == "failed"
    assert "password authentication failed" in r["error"], r["error"]
    assert_secret_nowhere(dbtd, r["id"], wrong)
    assert postgres.sql("select count(*) from pg_tables where schemaname = 'marts'",
                        db="analytics") == "0"
