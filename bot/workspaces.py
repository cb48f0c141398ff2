"""Several workspaces (OAuth distribution): Bolt's `OAuthSettings` with slack_sdk's
SQLAlchemy installation and OAuth state stores on crobot's own database, and the bot
token every background post uses.

Bolt refreshes a rotating token only when a request comes in; digests, nudges and
approval posts run without one, so `Workspaces.bot_token(team)` (the runtime's
`bot_token`) finds the workspace's installation in the store and refreshes it with
slack_sdk's `TokenRotator` before it is used, saving the new token for everyone.

The tables are created by the Alembic migration (storage/models.py builds them with
slack_sdk's own table builders); nothing here calls `create_tables()`.
"""

from __future__ import annotations

import logging
import threading
import time

from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation import TokenRotator
from sqlalchemy import or_, select

from crobot.bot.settings import Settings
from crobot.services.runtime import NotInstalled
from crobot.storage.db import Database
from crobot.storage.models import INSTALLATIONS_TABLE, Organization, Person

log = logging.getLogger(__name__)

# The bot scopes crobot asks for: the one list, which manifest.yml repeats verbatim
# (tests/test_workspaces.py checks that they agree).
BOT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    "files:write",
    "im:write",
    "channels:history",
    "groups:history",
    "im:history",
    "app_mentions:read",  # plain-language questions (handlers/questions.py)
)
# Refresh a rotating token this long before it expires (Bolt's default, used for
# requests and background posts alike).
ROTATE_MINUTES = 120
STATE_SECONDS = 600  # an "Add to Slack" click must come back within 10 minutes


class Workspaces:
    """The installations of one Slack app (client id) in crobot's database."""

    def __init__(self, settings: Settings, db: Database) -> None:
        if not settings.oauth or settings.slack_client_secret is None:
            raise ValueError("Workspaces needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
        self.client_id = str(settings.slack_client_id)
        self._secret = settings.slack_client_secret.get_secret_value()
        self.redirect_uri = settings.slack_redirect_uri
        self.db = db
        # Writes open BEGIN IMMEDIATE on SQLite; the stores write and read little.
        self.store = SQLAlchemyInstallationStore(
            client_id=self.client_id, engine=db.write_engine, logger=log
        )
        self.state_store = SQLAlchemyOAuthStateStore(
            expiration_seconds=STATE_SECONDS, engine=db.write_engine, logger=log
        )
        # oauth.v2.access (grant_type=refresh_token) goes to the configured Slack API.
        self.api = WebClient(base_url=settings.slack_api_url, timeout=10)
        self.rotator = TokenRotator(
            client_id=self.client_id, client_secret=self._secret, client=self.api
        )
        self._lock = threading.Lock()
        self._said_gone: set[str] = set()  # workspaces whose absence was logged
        self._said_lock = threading.Lock()

    # --- Bolt -------------------------------------------------------------------------
    def oauth_settings(self) -> OAuthSettings:
        return OAuthSettings(
            client_id=self.client_id,
            client_secret=self._secret,
            scopes=list(BOT_SCOPES),
            user_scopes=[],
            redirect_uri=self.redirect_uri,
            installation_store=self.store,
            state_store=self.state_store,
            state_expiration_seconds=STATE_SECONDS,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            logger=log,
        )

    def authorize(self) -> InstallationStoreAuthorize:
        """Bolt's own authorize for requests, with its token rotator on our Slack API URL
        (OAuthSettings' default one would always call slack.com)."""
        return InstallationStoreAuthorize(
            logger=log,
            installation_store=self.store,
            client_id=self.client_id,
            client_secret=self._secret,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            # auth.test once per token, not per request; a rotated token is a new key.
            cache_enabled=True,
            client=self.api,
        )

    # --- background posts ---------------------------------------------------------------
    def installation(self, team_id: str) -> Installation | None:
        """The workspace's latest installation: its own (also inside an Enterprise Grid),
        else an org-wide one of the Grid of the organisation it belongs to."""
        c = INSTALLATIONS_TABLE.c
        with self.db.read() as s:
            enterprise = s.execute(
                select(c.enterprise_id)
                .where(c.client_id == self.client_id, c.team_id == team_id)
                .order_by(c.installed_at.desc())
                .limit(1)
            ).first()
            # The Grid of the organisation that registered the workspace, or (registered by
            # its Grid alone) of the organisation whose people work in it.
            grid = s.scalars(
                select(Organization.slack_enterprise_id)
                .where(
                    Organization.slack_enterprise_id.is_not(None),
                    or_(
                        Organization.slack_team_id == team_id,
                        Organization.id.in_(select(Person.org_id).where(Person.team_id == team_id)),
                    ),
                )
                .order_by(Organization.slack_team_id.is_(None))
            ).first()
        if enterprise is not None:
            return self.store.find_installation(enterprise_id=enterprise[0], team_id=team_id)
        if grid is not None:
            return self.store.find_installation(
                enterprise_id=grid, team_id=None, is_enterprise_install=True
            )
        return None

    def bot_token(self, team_id: str) -> str:
        """The workspace's bot token, refreshed first if it expires within ROTATE_MINUTES;
        NotInstalled when there is none (said once in the log, until installed again)."""
        inst = self.installation(team_id)
        if inst is None or not inst.bot_token:
            with self._said_lock:
                first = team_id not in self._said_gone
                self._said_gone.add(team_id)
            if first:
                log.warning(
                    "crobot is not installed in Slack workspace %s: nothing is posted "
                    "there until it is installed again",
                    team_id,
                )
            raise NotInstalled(team_id)
        with self._said_lock:
            self._said_gone.discard(team_id)
        expires = inst.bot_token_expires_at
        if expires is None or expires > time.time() + ROTATE_MINUTES * 60:
            return inst.bot_token
        with self._lock:  # one rotation at a time in this process
            inst = self.installation(team_id) or inst  # another thread may have rotated it
            try:
                fresh = self.rotator.perform_token_rotation(
                    installation=inst, minutes_before_expiration=ROTATE_MINUTES
                )
            except SlackTokenRotationError as exc:
                # Slack refused the refresh token (revoked, invalid): nothing to post with.
                log.warning("could not refresh the token of workspace %s: %s", team_id, exc)
                raise NotInstalled(team_id) from exc
            if fresh is None or not fresh.bot_token:
                return str(inst.bot_token)
            self.store.save(fresh)
            log.info("refreshed the bot token of Slack workspace %s", team_id)
            return fresh.bot_token

    def delete(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget every token of a workspace (app_uninstalled, or its bot token revoked)."""
        self.store.delete_all(enterprise_id=enterprise_id, team_id=team_id)
