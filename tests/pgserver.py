"""A real, throw-away PostgreSQL server for the tests, CI and the benchmarks.

``PgServer.start()`` runs ``initdb`` in a fresh temporary directory and ``pg_ctl start`` on a
free port of 127.0.0.1, with a random superuser password (TCP logins use scram-sha-256,
so every test connects with a password that must never show up in output). ``stop()``
stops it and removes the directory. Where nothing should be started, ``RECONCILER_TEST_PG_URL``
names an existing server instead (its role needs CREATEDB).

initdb refuses to run as root. Under root (CI runs as root) the server runs as the
``postgres`` account that Debian's package creates, or else ``nobody``: the data directory
is handed to that account and the binaries run with its uid (``subprocess``' ``user=``).

CI starts one server for the whole run and exports its URL:

    eval "$(.venv/bin/python -m tests.pgserver start --dir /tmp/reconciler-ci-pg)"
    ...                                    # RECONCILER_TEST_PG_URL is set
    .venv/bin/python -m tests.pgserver stop --dir /tmp/reconciler-ci-pg
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

URL_ENV = "RECONCILER_TEST_PG_URL"
INSTALL_HINT = "sudo apt-get install postgresql"  # Debian/Ubuntu; 'brew install postgresql' on macOS
SUPERUSER = "reconciler"


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's versioned directories."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        "running as root, and neither a 'postgres' nor a 'nobody' account exists to run "
        "PostgreSQL as (initdb refuses root)"
    )


@dataclass
class PgServer:
    """A running server; ``url(dbname)`` gives a password-bearing URL for one of its databases."""

    host: str
    port: int
    user: str
    password: str
    directory: Path | None = None  # None: not ours (RECONCILER_TEST_PG_URL); never stopped
    bindir: Path | None = None
    base_url: str | None = None

    # -- starting and stopping -------------------------------------------------------------
    @classmethod
    def start(cls, directory: Path | None = None, *, durable: bool = False) -> PgServer:
        """initdb + pg_ctl start. ``durable``: keep fsync on (benchmarks); tests turn it off."""
        bindir = find_bindir()
        if bindir is None:
            raise FileNotFoundError(f"PostgreSQL's initdb/pg_ctl not found; install it: {INSTALL_HINT}")
        account = _run_as()
        root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
        password = secrets.token_urlsafe(18)
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if account is not None:
            for path in (root, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        run = _runner(account)
        run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={root}",
            "-c max_connections=200",
        ]
        if not durable:
            # Tests: nothing here must survive a power cut, and the machine has 2 shared cores.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        last: subprocess.CalledProcessError | None = None
        for _ in range(5):  # the free port may be taken between the probe and the bind: try another
            port = free_port()
            try:
                run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        " ".join([f"-p {port}", *options]),
                        "start",
                    ]
                )
                break
            except subprocess.CalledProcessError as exc:
                last = exc
        else:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {last}\n{tail}")
        return cls(
            host="127.0.0.1", port=port, user=SUPERUSER, password=password, directory=root, bindir=bindir
        )

    @classmethod
    def from_url(cls, url: str) -> PgServer:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(url)
        return cls(
            host=str(info.get("host", "127.0.0.1")),
            port=int(info.get("port", 5432)),
            user=str(info.get("user", os.environ.get("PGUSER", ""))),
            password=str(info.get("password", os.environ.get("PGPASSWORD", ""))),
            base_url=url,
        )

    def stop(self) -> None:
        if self.directory is None or self.bindir is None:
            return
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            _runner(_run_as())(
                [str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], check=False
            )
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- using it ----------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", workspace: str | None = None) -> str:
        """A URL with the password in it, as a user might pass one (``#workspace`` appended if given)."""
        if self.base_url is not None:
            from urllib.parse import urlsplit, urlunsplit

            parts = urlsplit(self.base_url)
            url = urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))
        else:
            url = f"postgresql://{quote(self.user)}:{quote(self.password)}@{self.host}:{self.port}/{dbname}"
        return url + (f"#{workspace}" if workspace else "")

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _runner(account: pwd.struct_passwd | None):  # type: ignore[no-untyped-def]
    def run(cmd: list[str], check: bool = True) -> None:
        kwargs: dict[str, object] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        subprocess.run(
            cmd,
            check=check,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            **kwargs,
        )  # type: ignore[call-overload]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Start or stop a throw-away PostgreSQL server for the tests."
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="where the server lives (removed by stop)")
    args = parser.parse_args()
    state = args.dir / "server.env"
    if args.action == "start":
        try:
            server = PgServer.start(args.dir)
        except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
            output = getattr(exc, "output", b"") or b""
            sys.exit(f"cannot start PostgreSQL: {exc}\n{output.decode(errors='replace')}")
        url = server.url()
        state.write_text(f"{server.port}\n{server.bindir}\n")
        print(f"export {URL_ENV}={shlex.quote(url)}")
    else:
        lines = state.read_text().split("\n") if state.exists() else []
        if len(lines) >= 2:
            PgServer(
                host="127.0.0.1",
                port=int(lines[0]),
                user=SUPERUSER,
                password="",
                directory=args.dir,
                bindir=Path(lines[1]),
            ).stop()
        else:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
