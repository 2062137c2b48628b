"""The `smsgate` command: serve, migrate, accounts and keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate import __version__
from smsgate.accounts import scopes as scope_names
from smsgate.accounts import service as accounts
from smsgate.config import Settings, get_settings
from smsgate.errors import ApiError
from smsgate.kit import i18n
from smsgate.kit.clock import iso
from smsgate.kit.i18n import Text, t
from smsgate.kit.logs import configure as configure_logs
from smsgate.storage import migrate as migrations
from smsgate.storage.db import Database


def _h(text: Text) -> str:
    """A help text, in the terminal's language (LANG)."""
    return i18n.render(text, i18n.from_environment())


app = typer.Typer(
    help=_h(t("SMSGate: a self-hostable SMS, MMS and WhatsApp gateway.")), no_args_is_help=True
)
accounts_app = typer.Typer(
    help=_h(t("Create and list accounts, change their plan.")), no_args_is_help=True
)
keys_app = typer.Typer(help=_h(t("Create API keys.")), no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
device_app = typer.Typer(help=_h(t("Simulated phones.")), no_args_is_help=True)
app.add_typer(device_app, name="device")
whatsapp_app = typer.Typer(help=_h(t("WhatsApp web lines.")), no_args_is_help=True)
app.add_typer(whatsapp_app, name="whatsapp")

T = TypeVar("T")


def _run(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> T:
    """Run one unit of work in its own transaction; ApiErrors become a clean exit 1."""
    settings = get_settings()

    async def _main() -> T:
        database = Database(settings)
        try:
            async with database.transaction() as session:
                return await work(session, settings)
        finally:
            await database.dispose()

    try:
        return asyncio.run(_main())
    except ApiError as exc:
        _say(t("error: {reason}", reason=exc.message), err=True)
        raise typer.Exit(1) from exc


def _say(text: Text, err: bool = False) -> None:
    """A line for the person at the terminal, in their language (LANG: es_MX.UTF-8 …)."""
    typer.echo(i18n.render(text, i18n.from_environment()), err=err)


@app.command(help=_h(t("Print the version.")))
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command(help=_h(t("Apply pending database migrations.")))
def migrate() -> None:
    """Apply pending database migrations."""
    settings = get_settings()
    migrations.upgrade(settings)
    _say(t("database at {revision}", revision=migrations.head_revision(settings)))


@app.command(help=_h(t("Start the HTTP server (applies pending migrations first).")))
def serve(
    host: Annotated[str | None, typer.Option(help=_h(t("Address to bind [SMSGATE_HOST]")))] = None,
    port: Annotated[int | None, typer.Option(help=_h(t("Port [SMSGATE_PORT]")))] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help=_h(t("[SMSGATE_DATABASE_URL]")))
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help=_h(t("API processes")))] = 1,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help=_h(t("Skip migrations")))
    ] = False,
    ssl_certfile: Annotated[
        str | None,
        typer.Option(help=_h(t("Serve HTTPS with this certificate (PEM) [SMSGATE_SSL_CERTFILE]"))),
    ] = None,
    ssl_keyfile: Annotated[
        str | None,
        typer.Option(help=_h(t("The certificate's private key (PEM) [SMSGATE_SSL_KEYFILE]"))),
    ] = None,
) -> None:
    """Start the HTTP server (applies pending migrations first)."""
    import uvicorn

    # Options travel to worker processes as settings, so every process reads the same values.
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("DATABASE_URL", database_url),
        ("SSL_CERTFILE", ssl_certfile),
        ("SSL_KEYFILE", ssl_keyfile),
    ):
        if value is not None:
            os.environ[f"SMSGATE_{name}"] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logs(settings.log_level, settings.log_format)
    if not no_migrate:
        migrations.upgrade(settings)
    scheme = "https" if settings.ssl_certfile else "http"
    _say(
        t(
            "SMSGate {version} on {url} ({database}); phones use {public_url}/api/mobile/v1",
            version=__version__,
            url=f"{scheme}://{settings.host}:{settings.port}",
            database=_db_label(settings),
            public_url=settings.public_url,
        )
    )
    uvicorn.run(
        "smsgate.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=False,
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
        timeout_keep_alive=settings.http_keepalive_seconds,
        timeout_graceful_shutdown=5,
    )


def _db_label(settings: Settings) -> str:
    if settings.is_sqlite:
        return "SQLite " + settings.database_url.split("///", 1)[-1]
    return "PostgreSQL"


@accounts_app.command("create", help=_h(t("Create an account.")))
def accounts_create(
    email: Annotated[str, typer.Option(help=_h(t("Login email")))],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help=_h(t("Password"))
        ),
    ],
    name: Annotated[str, typer.Option(help=_h(t("Display name")))] = "",
    plan: Annotated[str | None, typer.Option(help=_h(t("Plan id [SMSGATE_DEFAULT_PLAN]")))] = None,
) -> None:
    """Create an account."""

    async def work(session: AsyncSession, settings: Settings) -> str:
        account = await accounts.create_account(
            session,
            email=email,
            password=password,
            name=name,
            plan=plan or settings.default_plan,
            region=settings.default_region,
        )
        return account.id

    typer.echo(_run(work))


@accounts_app.command(
    "reset-password",
    help=_h(t("Set a new password for an account; every session and token is signed out.")),
)
def accounts_reset_password(
    account: Annotated[str, typer.Argument(help=_h(t("Account email or id")))],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help=_h(t("New password"))
        ),
    ],
) -> None:
    async def work(session: AsyncSession, settings: Settings) -> None:
        found = await accounts.find_account(session, account)
        if found is None:
            raise ApiError(404, t("no account {account}", account=account), "not_found")
        await accounts.set_password(session, found, password)

    _run(work)
    _say(
        t(
            "{account}: password changed; every session and token was signed out",
            account=account,
        )
    )


@accounts_app.command("list", help=_h(t("List accounts: id, email, plan, created.")))
def accounts_list() -> None:
    """List accounts: id, email, plan, created."""

    async def work(session: AsyncSession, _: Settings) -> list[str]:
        return [
            f"{a.id}  {a.email}  {a.plan}  {iso(a.created_at)}"
            for a in await accounts.list_accounts(session)
        ]

    for line in _run(work):
        typer.echo(line)


@accounts_app.command("set-plan", help=_h(t("Change an account's plan.")))
def accounts_set_plan(
    account: Annotated[str, typer.Argument(help=_h(t("Account email or id")))],
    plan: Annotated[str, typer.Argument(help=_h(t("Plan id")))],
) -> None:
    """Change an account's plan."""

    async def work(session: AsyncSession, settings: Settings) -> None:
        from smsgate.billing import plans

        known = plans.load(settings.plans_file)
        if plan not in known:
            raise ApiError(
                400,
                t("no plan {plan}; the plans are {known}", plan=plan, known=", ".join(known)),
                "bad_plan",
            )
        found = await accounts.find_account(session, account)
        if found is None:
            raise ApiError(404, t("no account {account}", account=account), "not_found")
        await accounts.set_plan(session, found, plan)

    _run(work)
    _say(t("{account}: plan {plan}", account=account, plan=plan))


@keys_app.command("create", help=_h(t("Create an API key and print it (shown only this once).")))
def keys_create(
    account: Annotated[str, typer.Option(help=_h(t("Account email or id")))],
    name: Annotated[str, typer.Option(help=_h(t("A name to recognise the key by")))] = "cli",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help=_h(t("Limit to these scopes: {scopes}", scopes=", ".join(scope_names.ALL)))
        ),
    ] = None,
) -> None:
    """Create an API key and print it (shown only this once)."""

    async def work(session: AsyncSession, settings: Settings) -> str:
        found = await accounts.find_account(session, account)
        if found is None:
            raise ApiError(404, t("no account {account}", account=account), "not_found")
        created = await accounts.create_key(
            session, found.id, name, scope_names.parse(scope), settings
        )
        return created[1]

    typer.echo(_run(work))


@device_app.command(
    "simulate", help=_h(t("Run simulated phones against a server until interrupted."))
)
def device_simulate(
    server: Annotated[
        str, typer.Option(help=_h(t("The server's base URL, e.g. http://127.0.0.1:8000")))
    ],
    token: Annotated[
        str, typer.Option(help=_h(t("A pairing token from POST /api/devices/android")))
    ],
    count: Annotated[
        int,
        typer.Option(
            min=1,
            help=_h(
                t(
                    "Phones to simulate (the first pairs with the token, the rest sign in with "
                    "a login code)"
                )
            ),
        ),
    ] = 1,
    fail_rate: Annotated[
        float, typer.Option(min=0, max=1, help=_h(t("Share of recipients that fail")))
    ] = 0.0,
    delivery_delay: Annotated[
        float, typer.Option(min=0, help=_h(t("Seconds from sent to delivered")))
    ] = 1.0,
    inbound_rate: Annotated[
        float, typer.Option(min=0, help=_h(t("Received messages per second")))
    ] = 0.0,
    login: Annotated[
        str | None, typer.Option(help=_h(t("Account email, to add phones 2..N")))
    ] = None,
    password: Annotated[
        str | None, typer.Option(help=_h(t("Account password, for phones 2..N")))
    ] = None,
) -> None:
    """Run simulated phones against a server until interrupted."""
    from smsgate.agents.phone import DeviceClient
    from smsgate.agents.simulator import SIMULATOR_CHANNELS, SimulatedPhone

    base = server.rstrip("/")
    if not base.endswith("/api/mobile/v1"):
        base += "/api/mobile/v1"
    if count > 1 and (login is None or password is None):
        _say(t("error: --count above 1 needs --login and --password"), err=True)
        raise typer.Exit(1)

    async def main() -> None:
        phones = []
        for index in range(count):
            client = DeviceClient(base)
            if index == 0:
                registration = await client.register(
                    pairing_token=token, name="smsgate/simulator", channels=SIMULATOR_CHANNELS
                )
            else:
                assert login is not None and password is not None
                registration = await client.register(
                    login=login,
                    password=password,
                    name=f"smsgate/simulator-{index + 1}",
                    channels=SIMULATOR_CHANNELS,
                )
            _say(t("phone {number}: device {device}", number=index + 1, device=registration.id))
            phones.append(
                SimulatedPhone(
                    client,
                    fail_rate=fail_rate,
                    delivery_delay=delivery_delay,
                    inbound_rate=inbound_rate,
                )
            )
        await asyncio.gather(*(phone.run() for phone in phones))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@whatsapp_app.command(
    "bridge",
    help=_h(t("Run a web WhatsApp line: link it by QR code, then send and receive through it.")),
)
def whatsapp_bridge(
    server: Annotated[
        str, typer.Option(help=_h(t("The server's base URL, e.g. http://127.0.0.1:8000")))
    ],
    state_dir: Annotated[
        str, typer.Option(help=_h(t("Where the line's device token and WhatsApp session are kept")))
    ] = "./data/whatsapp-bridge",
    token: Annotated[
        str | None,
        typer.Option(
            help=_h(t("The line's pairing token (pt_...), needed on the first start only"))
        ),
    ] = None,
    simulate: Annotated[
        bool, typer.Option(help=_h(t("Use a simulated WhatsApp session (links after 5 s)")))
    ] = False,
) -> None:
    """Run a web WhatsApp line: link it by QR code, then send and receive through it."""
    from pathlib import Path

    from smsgate.agents.phone import DeviceClient
    from smsgate.agents.whatsapp_web import Bridge, NeonizeSession, SimulatedSession, WebSession

    base = server.rstrip("/")
    if not base.endswith("/api/mobile/v1"):
        base += "/api/mobile/v1"
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / "device-token"

    async def main() -> None:
        client = DeviceClient(base)
        if token:
            registration = await client.register(pairing_token=token, name="smsgate/whatsapp")
            token_file.write_text(registration.token)
            token_file.chmod(0o600)
            _say(t("paired: line {line}", line=registration.id))
        elif token_file.exists():
            client.token = token_file.read_text().strip()
        else:
            _say(t("error: first start needs --token (the line's pairing token)"), err=True)
            raise typer.Exit(1)
        session: WebSession
        if simulate:
            session = SimulatedSession(auto_link=5.0)
        else:
            try:
                session = NeonizeSession(str(folder / "whatsapp-session.db"))
            except RuntimeError as exc:
                _say(t("error: {reason}", reason=exc), err=True)
                raise typer.Exit(1) from exc
        try:
            await Bridge(client, session).run()
        finally:
            await client.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@app.command(
    help=_h(
        t(
            "Run the background work only (periodic jobs, webhook delivery, WhatsApp "
            "cloud lines) in this process. SIGTERM or Ctrl-C stops it gracefully: work "
            "in flight is finished first."
        )
    )
)
def worker() -> None:
    """Run the background work only (periodic jobs, webhook delivery, WhatsApp cloud lines)
    in this process. SIGTERM or Ctrl-C stops it gracefully: work in flight is finished first."""
    import signal

    from smsgate.app import create_app
    from smsgate.worker.jobs import EmbeddedWorker

    settings = get_settings()
    configure_logs(settings.log_level, settings.log_format)
    application = create_app(settings)

    async def main() -> None:
        worker = EmbeddedWorker(application)
        worker.start()
        asked = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, asked.set)
        try:
            await asked.wait()
        finally:
            await worker.stop()
            await application.state.webhook_http.aclose()
            await application.state.db.dispose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def main() -> None:
    app()
