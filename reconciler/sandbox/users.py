"""The sandbox's users, their personal access tokens and their roles.

The seed's ``user`` is the default user: the Owner of every organization whose ``role`` it names,
logging in with the configured (or the documented demo) personal access token. The seed's
``users`` list adds users with other roles, each with its own key, as a real organization has:

- organization-level users (``ORGANIZATION_OWNER``, ``ORGANIZATION_ADMIN``) use the organization
  token for everything and are refused a workspace token (``BAD_CREDENTIALS``,
  guides/authentication/refresh-token-usage.md);
- workspace-level users (organization role ``ORGANIZATION_CLIENT_MEMBER``) hold a role per
  workspace (``CLIENT_ORGANIZATION_ADMIN``, ``CLIENT_ORGANIZATION_CONTENT_MANAGER``,
  ``CLIENT_ORGANIZATION_VIEWER``) and must ask for a workspace token to reach its products.

Users live in memory, built from the seed and the config on every start: they are not data the
API can change. Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

ORG_LEVEL_ROLES = frozenset({"SUPER_ADMIN", "ORGANIZATION_OWNER", "ORGANIZATION_ADMIN"})
WORKSPACE_MEMBER = "ORGANIZATION_CLIENT_MEMBER"
# Who may trigger renders (Y:4355) and, by the same token, change products and their files.
WRITER_ROLES = frozenset(
    {
        "SUPER_ADMIN",
        "ORGANIZATION_OWNER",
        "ORGANIZATION_ADMIN",
        "CLIENT_ORGANIZATION_ADMIN",
        "CLIENT_ORGANIZATION_CONTENT_MANAGER",
    }
)
# Roles the seed may give (GetUserOrganizationsResponseModel.role of the YAML).
KNOWN_ROLES = frozenset(
    {
        "SUPER_ADMIN",
        "ORGANIZATION_OWNER",
        "ORGANIZATION_ADMIN",
        "ORGANIZATION_CLIENT_MEMBER",
        "CLIENT_ORGANIZATION_ADMIN",
        "CLIENT_ORGANIZATION_CONTENT_MANAGER",
        "CLIENT_ORGANIZATION_RESTRICTED_ACCESS",
        "CLIENT_ORGANIZATION_VIEWER",
        "CLIENT_ORGANIZATION_CUSTOMER",
        "ORGANIZATION_SHOWROOM_MEMBER",
        "SHOWROOM_SHARELINK_EDITOR",
        "SHOWROOM_SHARELINK_VIEWER",
    }
)


@dataclass
class User:
    """One user: credentials, the organizations it belongs to and its workspace roles."""

    email: str
    password: str
    access_token: str
    org_roles: dict[str, str] = field(default_factory=dict)  # organization uuid -> role
    client_roles: dict[str, str] = field(default_factory=dict)  # workspace uuid -> role

    @property
    def role(self) -> str:
        """The role that names this user: its workspace role if it has one, else its organization role."""
        if self.client_roles:
            return next(iter(self.client_roles.values()))
        return next(iter(self.org_roles.values()), "")

    def org_level(self, org: str | None) -> bool:
        return org is not None and self.org_roles.get(org) in ORG_LEVEL_ROLES

    def public(self) -> dict[str, Any]:
        """What tests and the banner may show (demo credentials, not secrets)."""
        return {
            "email": self.email,
            "password": self.password,
            "access_token": self.access_token,
            "role": self.role,
            "organizations": dict(self.org_roles),
            "workspaces": dict(self.client_roles),
        }


class Directory:
    """All users of a sandbox; lookups by key, by e-mail and by role."""

    def __init__(self, users: list[User]) -> None:
        if not users:
            raise ValueError("the seed defines no user")
        self.users = users
        self.default = users[0]
        emails = [u.email.lower() for u in users]
        if len(set(emails)) != len(emails):
            raise ValueError("the seed names a user e-mail twice")
        keys = [u.access_token for u in users]
        if len(set(keys)) != len(keys):
            raise ValueError("two seed users share a personal access token (a key belongs to one user)")

    @classmethod
    def from_seed(
        cls,
        seed: dict[str, Any],
        default_token: str,
        default_email: str,
        default_password: str,
        workspace_orgs: dict[str, str],
    ) -> Directory:
        """Build from the seed; ``workspace_orgs`` maps every workspace uuid to its organization."""
        main = dict(seed.get("user") or {})
        owner = User(
            main.get("email") or default_email,
            main.get("password") or default_password,
            default_token,
            {o["uuid"]: o["role"] for o in seed.get("organizations", []) if o.get("role")},
        )
        users = [owner]
        for i, raw in enumerate(seed.get("users") or []):
            where = f"seed users[{i}]"
            email = raw.get("email")
            key = raw.get("personalAccessToken")
            if not email or not key:
                raise ValueError(f"{where}: needs 'email' and 'personalAccessToken'")
            user = User(email, raw.get("password") or "", key)
            for org, role in (raw.get("organizations") or {}).items():
                user.org_roles[org] = _role(role, where)
            for client, role in (raw.get("workspaces") or {}).items():
                org = workspace_orgs.get(client)
                if org is None:
                    raise ValueError(f"{where}: unknown workspace {client}")
                user.org_roles.setdefault(org, WORKSPACE_MEMBER)
                user.client_roles[client] = _role(role, where)
            users.append(user)
        return cls(users)

    def by_token(self, key: str) -> User | None:
        found = None
        for user in self.users:  # compare with every key, so timing does not tell which one matched
            if hmac.compare_digest(key.encode(), user.access_token.encode()):
                found = user
        return found

    def by_email(self, email: str | None) -> User | None:
        if not email:
            return None
        return next((u for u in self.users if u.email.lower() == email.lower()), None)

    def for_role(self, role: str) -> User:
        """The first user with ``role`` (its workspace role, else its organization role)."""
        for user in self.users:
            if role in user.client_roles.values() or role in user.org_roles.values():
                return user
        known = sorted({u.role for u in self.users})
        raise KeyError(f"no seed user has the role {role!r} (roles: {', '.join(known)})")


def _role(role: Any, where: str) -> str:
    if role not in KNOWN_ROLES:
        raise ValueError(f"{where}: unknown role {role!r}")
    return str(role)
