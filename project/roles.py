"""Who may approve what: the project's roles file, ``<project>/roles.yaml``.

A flat YAML mapping from a role to the users who hold it (read with the same YAML
header reader and field checks as the campaign files, so a mistake is reported at its
``file:line:col``)::

    activity_approvers: [ops.li]       # approve a campaign's activity (活动审批)
    budget_approvers: [finance.zhao]   # approve a campaign's budget (预算审批)
    operators: [ops.li, ops.wang]      # void an unused coupon

Without the file nobody holds any role. Whoever approves must also differ from the
campaign's submitter (checked where the approval is recorded, ``issuance.approval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kequn.errors import KequnError, raise_collected
from kequn.yaml_header import parse_yaml_header
from project import fields as f

FILE_NAME = "roles.yaml"
ROLES = ("activity_approvers", "budget_approvers", "operators")

FIELDS = tuple(f.Field(role, f.items, default=[]) for role in ROLES)


@dataclass(frozen=True)
class Roles:
    """The users holding each role, and the file they came from."""

    holders: dict[str, frozenset[str]] = field(default_factory=dict)
    path: Path | None = None

    def may(self, user: str, role: str) -> bool:
        """Whether ``user`` holds ``role``."""
        return user in self.holders.get(role, frozenset())

    def who(self, role: str) -> list[str]:
        """The holders of ``role``, sorted."""
        return sorted(self.holders.get(role, frozenset()))


def load_roles(project_dir: Path) -> Roles:
    """The roles of the project (none when it has no roles file); errors at file:line:col."""
    path = project_dir / FILE_NAME
    if not path.exists():
        return Roles(path=path)
    text = path.read_text(encoding="utf-8")
    definition = parse_yaml_header(text, path, "ROLES")
    errors: list[KequnError] = []
    values = f.read_fields(definition, FIELDS, errors)
    raise_collected(errors)
    return Roles({role: frozenset(str(u) for u in values[role]) for role in ROLES}, path)
