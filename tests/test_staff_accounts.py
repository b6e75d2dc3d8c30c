"""Staff accounts: the CLI, Argon2id hashes, lockout with back-off, the sign-in log, and answers
that never tell which emails have accounts (bot/accounts.py, sync/login.py)."""

from __future__ import annotations

import statistics
import time

import psycopg
import pytest
from argon2 import PasswordHasher

from bot.accounts import authenticate, disable_user, set_password
from bot.settings import Settings
from tests.staff_helpers import PASSWORD, account, login, stored_text, user_cli
from tests.sync_helpers import serve


def _dentist(db_url: str, name: str = "Dr Maya Chen") -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute("INSERT INTO dentists (full_name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]


def _refused_plainly(done) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")], done.stderr


def test_cli_adds_rekeys_and_disables_accounts(db_url, engine, settings):
    dentist = _dentist(db_url)
    added = user_cli(db_url, "add", "Front.Desk@Clinic.example", "--role", "admin", "--name", "Ana Front",
                     "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added admin front.desk@clinic.example (Ana Front)" in added.stdout
    done = user_cli(db_url, "add", "maya@clinic.example", "--role", "dentist", "--dentist-id", str(dentist),
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT email, full_name, role, dentist_id, password_hash FROM staff_users ORDER BY id").fetchall()
        assert [r[:4] for r in rows] == [("front.desk@clinic.example", "Ana Front", "admin", None),
                                         ("maya@clinic.example", "Dr Maya Chen", "dentist", dentist)]
        assert all(r[4].startswith("$argon2id$") for r in rows)
    assert authenticate(engine, settings, "FRONT.DESK@clinic.example", PASSWORD, None).outcome == "ok"

    # an operator's mistakes: one line, exit code 2, nothing changed
    _refused_plainly(user_cli(db_url, "add", "front.desk@CLINIC.example", "--role", "admin", "--password-stdin",
                              stdin=PASSWORD + "\n"))  # the same email, other case
    _refused_plainly(user_cli(db_url, "add", "x@clinic.example", "--role", "dentist", "--dentist-id", "999",
                              "--password-stdin", stdin=PASSWORD + "\n"))
    _refused_plainly(user_cli(db_url, "add", "y@clinic.example", "--role", "admin", "--password-stdin",
                              stdin="too short\n"))
    _refused_plainly(user_cli(db_url, "passwd", "nobody@clinic.example", "--password-stdin", stdin=PASSWORD + "\n"))
    _refused_plainly(user_cli(db_url, "disable", "nobody@clinic.example"))

    fresh = "a completely new passphrase"
    assert user_cli(db_url, "passwd", "maya@clinic.example", "--password-stdin", stdin=fresh + "\n").returncode == 0
    assert authenticate(engine, settings, "maya@clinic.example", PASSWORD, None).outcome == "refused"
    assert authenticate(engine, settings, "maya@clinic.example", fresh, None).outcome == "ok"
    assert user_cli(db_url, "disable", "maya@clinic.example").returncode == 0
    assert authenticate(engine, settings, "maya@clinic.example", fresh, None).outcome == "refused"

    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM staff_users").fetchone()[0] == 2
        everything = stored_text(conn)
    for secret in (PASSWORD, fresh, "too short"):
        assert secret not in everything
    assert "--help" not in user_cli(db_url, "--help").stderr
    assert "user add you@clinic.example --role admin" in user_cli(db_url, "--help").stdout


def test_database_refuses_anything_but_an_argon2id_hash(db_url):
    weak = PasswordHasher(type=__import__("argon2").Type.I).hash(PASSWORD)  # Argon2i: not the one we use
    with psycopg.connect(db_url, autocommit=True) as conn:
        for stored in (PASSWORD, weak, "$2b$12$abcdefghijklmnopqrstuv"):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("INSERT INTO staff_users (email, full_name, role, password_hash)"
                             " VALUES ('a@b.example', 'A', 'admin', %s)", (stored,))
        with pytest.raises(psycopg.errors.CheckViolation):  # a dentist's account names the dentist
            conn.execute("INSERT INTO staff_users (email, full_name, role, password_hash)"
                         " VALUES ('a@b.example', 'A', 'dentist', %s)", (PasswordHasher().hash(PASSWORD),))


async def test_ten_wrong_passwords_lock_the_account_and_every_attempt_is_logged(db_url, engine, settings):
    account(engine, settings, "desk@clinic.example")
    async with serve(settings) as (url, app):
        answers = [await login(url, "desk@clinic.example", f"wrong guess {n}") for n in range(10)]
        assert [a.status for a in answers] == [401] * 4 + [429] * 6
        assert all(a.body["error"] == "wrong_credentials" for a in answers[:4])
        for a in answers[4:]:
            assert a.body["error"] == "locked" and 0 < int(a.headers["Retry-After"]) <= 60
            assert a.cookie is None
        right = await login(url, "desk@clinic.example", PASSWORD)  # the right password, during the lock
        assert right.status == 429 and right.cookie is None

        # an email without an account: the very same answers, lock included
        ghosts = [await login(url, "ghost@clinic.example", f"wrong guess {n}") for n in range(10)]
        assert [(g.status, g.body["error"], set(g.headers) & {"Retry-After"}) for g in ghosts] == \
            [(a.status, a.body["error"], set(a.headers) & {"Retry-After"}) for a in answers]
        assert [g.body for g in ghosts[:4]] == [a.body for a in answers[:4]]  # word for word
    with psycopg.connect(db_url) as conn:
        log = conn.execute("SELECT email, success, reason, client, user_id IS NOT NULL FROM staff_sign_ins"
                           " ORDER BY id").fetchall()
        assert [r[2] for r in log[:11]] == ["wrong_password"] * 5 + ["locked"] * 6
        assert [r[2] for r in log[11:]] == ["unknown_email"] * 5 + ["locked"] * 5
        assert not any(r[1] for r in log) and all(r[3] == "127.0.0.1" for r in log)
        assert all(r[4] for r in log[:11]) and not any(r[4] for r in log[11:])
        everything = stored_text(conn)
    assert "wrong guess" not in everything and PASSWORD not in everything


def test_the_lock_doubles_with_each_failure_after_it_and_a_right_password_clears_it(db_url, engine):
    settings = Settings(database_url=db_url, env="test", jwt_secret="t" * 40, _env_file=None,
                        staff_lockout_after=2, staff_lockout_base_seconds=30, staff_lockout_max_seconds=100)
    account(engine, settings, "desk@clinic.example")

    def lock_passes() -> None:  # the clock moves on past the lock (rather than waiting for it)
        with engine.begin() as conn:  # the lock is counted from the sign-in log
            conn.exec_driver_sql("UPDATE staff_sign_ins SET at = at - interval '101 seconds'")
            conn.exec_driver_sql("UPDATE staff_users SET password_changed_at = password_changed_at"
                                 " - interval '101 seconds'")

    attempt = lambda pw: authenticate(engine, settings, "desk@clinic.example", pw, "10.0.0.9")  # noqa: E731
    assert attempt("nope").outcome == "refused"
    assert (attempt("nope").outcome, attempt("nope").retry_after) == ("locked", 30)
    lock_passes()
    assert attempt("nope").retry_after == 60     # one failure after the lock: twice as long
    lock_passes()
    assert attempt("nope").retry_after == 100    # capped
    lock_passes()
    assert attempt(PASSWORD).outcome == "ok"
    assert attempt("nope").outcome == "refused"  # the count started again


def test_an_unknown_email_costs_a_hash_verification_too(engine, settings):
    account(engine, settings, "desk@clinic.example")

    def median(email: str) -> float:
        times = []
        for n in range(5):
            start = time.perf_counter()
            authenticate(engine, settings, email, "wrong", None)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    known, unknown = median("desk@clinic.example"), median(f"ghost{time.time_ns()}@clinic.example")
    assert unknown > 0.5 * known, (unknown, known)  # without the dummy hash: a few ms against ~100


def test_a_hash_of_weaker_parameters_is_upgraded_at_sign_in(db_url, engine, settings):
    account(engine, settings, "desk@clinic.example")
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE staff_users SET password_hash = %s", (old,))
    assert authenticate(engine, settings, "desk@clinic.example", PASSWORD, None).outcome == "ok"
    with engine.connect() as conn:
        now = conn.exec_driver_sql("SELECT password_hash FROM staff_users").scalar_one()
    assert now != old and not PasswordHasher().check_needs_rehash(now)


def test_passwd_and_disable_in_process_end_sessions(engine, settings):
    from bot import staff_sessions

    account(engine, settings, "desk@clinic.example")
    first, _ = authenticate(engine, settings, "desk@clinic.example", PASSWORD, None, open_session=True).session
    assert staff_sessions.lookup(engine, first) is not None
    assert set_password(engine, settings, "desk@clinic.example", "another long passphrase") == 1
    assert staff_sessions.lookup(engine, first) is None
    second, _ = authenticate(engine, settings, "desk@clinic.example", "another long passphrase", None,
                             open_session=True).session
    assert disable_user(engine, "DESK@clinic.example") == 1
    assert staff_sessions.lookup(engine, second) is None


def test_failures_older_than_a_day_count_for_nobody_known_or_not(db_url, engine, settings):
    """One rule for every email: four failures, a day passes, four more: neither the account nor
    an unknown email is locked (the account's count once never decayed, an unknown email's did,
    which told them apart)."""
    account(engine, settings, "desk@clinic.example")
    for email in ("desk@clinic.example", "ghost@clinic.example"):
        for _ in range(4):
            assert authenticate(engine, settings, email, "nope", "10.0.0.9").outcome == "refused"
    with engine.begin() as conn:  # a day and a minute pass
        conn.exec_driver_sql("UPDATE staff_sign_ins SET at = at - interval '1 day 1 minute'")
        conn.exec_driver_sql("UPDATE staff_users SET password_changed_at = password_changed_at"
                             " - interval '1 day 1 minute'")
    for email in ("desk@clinic.example", "ghost@clinic.example"):
        assert [authenticate(engine, settings, email, "nope", "10.0.0.9").outcome for _ in range(5)] == \
            ["refused"] * 4 + ["locked"], email
