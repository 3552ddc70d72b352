"""`collectwise admin ...`: the admin console and its users.

collectwise admin serve --host 127.0.0.1 --port 8050
collectwise admin users add NAME --role admin        (prompts for the password)
echo "$PW" | collectwise admin users add NAME --role viewer --password-stdin
collectwise admin ensure-demo-user                    (make demo)
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated

import typer

from collectwise.shell import new_app

log = logging.getLogger("collectwise.admin")

app = new_app(help="The admin console (Dash) and its users.", no_args_is_help=True)
users_app = new_app(help="People who may sign in to the console.", no_args_is_help=True)
app.add_typer(users_app, name="users")

RoleOpt = Annotated[str, typer.Option(help="viewer, operator or admin")]


def _store():  # type: ignore[no-untyped-def]
    from admin_app.user_store import UserStore  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415

    return UserStore(get_settings().paths.users_db)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(help="user name")],
    role: RoleOpt = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Add a user; the password is prompted for (or read from stdin), never an argument."""
    from admin_app.actions import ActionLog  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415

    record = _store().add(name, _read_password(password_stdin), role)
    ActionLog(get_settings().paths.users_db).record(
        "cli", "user_add", "ok", record.name, f"role {record.role}"
    )
    typer.echo(f"added {record.name} ({record.role})")


@users_app.command("list")
def list_users() -> None:
    """Every user with role, state and last sign-in."""
    for r in _store().list():
        state = "active" if r.active else "disabled"
        typer.echo(f"{r.name:<24} {r.role:<9} {state:<9} last login {r.last_login_at or 'never'}")


@users_app.command("set-role")
def set_role(
    name: str, role: Annotated[str, typer.Argument(help="viewer, operator, admin")]
) -> None:
    """Change a user's role (ends their open sessions)."""

    record = _store().set_role(name, role)
    typer.echo(f"{record.name} is now {record.role}")


@users_app.command("set-password")
def set_password(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password (ends the user's open sessions)."""

    _store().set_password(name, _read_password(password_stdin))
    typer.echo(f"password of {name} changed")


@users_app.command("disable")
def disable(name: str) -> None:
    """Disable a user (their sessions end; the record stays for the audit trail)."""

    _store().set_active(name, False)
    typer.echo(f"{name} disabled")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface (default from settings)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port (default 8050)")
    ] = None,
) -> None:
    """Run the console until Ctrl-C."""
    from admin_app.app import create_app  # noqa: PLC0415
    from admin_app.backends import Backends  # noqa: PLC0415
    from admin_app.server import wsgi_server  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415

    platform = get_settings()
    settings = platform.admin.model_copy(
        update={"host": host or platform.admin.host, "port": port or platform.admin.port}
    )
    backends = Backends(platform.model_copy(update={"admin": settings}))
    if not _store().list():
        log.warning("no users yet: add one with `collectwise admin users add NAME --role admin`")
    # One line per HTTP request is noise; the console's own audit trail records actions.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = wsgi_server(create_app(backends).server, settings.host, settings.port)
    log.info("admin console on %s", settings.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("console stopped")


@app.command("ensure-demo-user")
def ensure_demo_user(
    host: Annotated[str, typer.Option(help="host in the printed URL")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port in the printed URL")] = 8050,
    wait: Annotated[float, typer.Option(min=0, help="seconds to wait for the console")] = 0.0,
) -> None:
    """Create user `demo` (admin) with a random password kept in .run/admin-demo.txt."""
    from admin_app.server import ensure_demo_user as ensure  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415

    credentials = get_settings().paths.demo_credentials_file
    login = ensure(_store(), credentials)
    url = f"http://{host}:{port}/"
    if wait:
        _wait_for(url + "login", wait)
    typer.echo(f"admin console: {url}  user: {login.name}  password: {login.password}")
    typer.echo(f"(the login is kept in {credentials})")


def _wait_for(url: str, seconds: float) -> None:
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    log.warning("the console did not answer at %s within %.0f s", url, seconds)
