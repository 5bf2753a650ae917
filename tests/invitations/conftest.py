"""Shared arrangements for the invitation tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from models.access import Viewer
from models.actions import invitations as inv
from models.actor import Actor
from models.entities import Organisation, Team, User
from models.enums import Role, Source, TeamRole
from tests.support import factories as f


@dataclass
class Scene:
    org: Organisation
    admin: User
    manager: User
    member: User
    team: Team
    other_team: Team
    admin_viewer: Viewer
    manager_viewer: Viewer
    secret_key: str

    def actor(self, viewer: Viewer) -> Actor:
        return Actor(Source.ADMIN, viewer.name, viewer.user_id)

    def invite(self, session, email: str = "new.person@example.com", **kwargs) -> inv.Issued:
        kwargs.setdefault("role", Role.USER)
        viewer = kwargs.pop("viewer", self.admin_viewer)
        return inv.invite(
            session,
            viewer=viewer,
            email=email,
            actor=self.actor(viewer),
            secret_key=self.secret_key,
            **kwargs,
        )


@pytest.fixture
def scene(session, settings) -> Scene:
    org = f.make_org(session, name="Acme Labs")
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, name="Ada Admin")
    manager = f.make_user(session, org, role=Role.MANAGER, name="Max Manager")
    member = f.make_user(session, org)
    team = f.make_team(session, org, "Research")
    other_team = f.make_team(session, org, "Finance")
    f.add_member(session, team, manager, TeamRole.MANAGER)
    session.commit()
    return Scene(
        org=org,
        admin=admin,
        manager=manager,
        member=member,
        team=team,
        other_team=other_team,
        admin_viewer=Viewer.for_user(admin),
        manager_viewer=Viewer.for_user(manager),
        secret_key=settings.secret_key,
    )


IDENTITY_HEADER = "X-Odock-Verified-Email"
HOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" + "=="
OLD_HOOK_SECRET = "whsec_" + "c2VjcmV0LXRoYXQtaXMtYmVpbmctcm90YXRlZC1vdXQ="


@pytest.fixture
def enroll_settings(settings):
    return settings.model_copy(
        update={
            "enrollment_identity_header": IDENTITY_HEADER,
            "enrollment_webhook_secrets": f"{HOOK_SECRET}, {OLD_HOOK_SECRET}",
        }
    )


@pytest.fixture
def enroll_client(apps, enroll_settings, clean_db):
    return apps.for_settings(enroll_settings).test_client()


@pytest.fixture(scope="session")
def live_server(settings, engine, public_listener):
    """The web app on the loopback port that invitation links point at (a real HTTP server)."""
    import threading

    from werkzeug.serving import make_server

    from webhooks.app import create_app

    app = create_app(
        settings.model_copy(
            update={
                "enrollment_identity_header": IDENTITY_HEADER,
                "enrollment_webhook_secrets": HOOK_SECRET,
            }
        )
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=public_listener.fileno())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings.public_base_url
    server.shutdown()
    thread.join(timeout=10)
