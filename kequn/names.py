"""One rule for every name kequn knows: definitions, owners and teams.

A *name* (of a tag, segment, campaign...) is snake_case: a lowercase letter, then
lowercase letters, digits and ``_``. A *team* (an owner, or an entry of ``shared_with``)
is ``team:`` followed by a name: it is also a Dagster team owner, and it must survive as
a folder name, a metric label and a YAML key, so there are no dots, dashes or spaces.

>>> name_problem("wake_up"), name_problem("Wake-up")
('', "'Wake-up' is not snake_case (a lowercase letter, then a-z, 0-9 or _)")
>>> team_problem("team:credit_risk"), team_problem("team:9ops")
('', "'team:9ops' is not a team: write 'team:<department>' with a snake_case department")
>>> as_team("growth"), as_team("team:growth")
('team:growth', 'team:growth')
"""

from __future__ import annotations

import re

NAME = re.compile(r"[a-z][a-z0-9_]*")
TEAM_PREFIX = "team:"


def is_name(text: str) -> bool:
    """Whether ``text`` is a snake_case name."""
    return NAME.fullmatch(text) is not None


def name_problem(text: str) -> str:
    """Why ``text`` is not a name, or '' when it is one."""
    if is_name(text):
        return ""
    return f"'{text}' is not snake_case (a lowercase letter, then a-z, 0-9 or _)"


def is_team(text: str) -> bool:
    """Whether ``text`` is ``team:<name>``."""
    return text.startswith(TEAM_PREFIX) and is_name(text[len(TEAM_PREFIX):])


def team_problem(text: str) -> str:
    """Why ``text`` is not a team, or '' when it is one."""
    if is_team(text):
        return ""
    return (f"'{text}' is not a team: write '{TEAM_PREFIX}<department>' with a snake_case "
            "department")


def as_team(text: str) -> str:
    """``team:x`` for ``x`` or ``team:x`` (what a command-line filter accepts)."""
    return text if text.startswith(TEAM_PREFIX) else TEAM_PREFIX + text
