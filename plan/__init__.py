"""Compile: the project's definitions turned into SQL and dependencies, once per process.

:func:`compile_project` returns a :class:`Plan`: the tag storage groups and their fused
queries (:mod:`plan.tags`) and one query per segment (:mod:`plan.segments`). Every query
reads the day through ``$as_of``/``$as_of_end`` (:mod:`plan.params`), so one plan serves
every day. Pure: builds sqlglot trees only; imports neither DuckDB nor Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

from plan.rules import CompiledRule, compile_rules
from plan.segments import CompiledSegment, compile_segment
from plan.tags import TagPlan, compile_tags
from project.model import Project


@dataclass(frozen=True)
class Plan:
    """What runs: the tag plan and each usable segment's compiled query."""

    project: Project
    tags: TagPlan
    segments: dict[str, CompiledSegment]
    rules: dict[str, CompiledRule]


def compile_project(project: Project) -> Plan:
    """Compile every usable definition of ``project`` (broken ones are left out)."""
    return Plan(
        project=project,
        tags=compile_tags(project.tags, project.broken_of("tag"), project.root / "tags"),
        segments={name: compile_segment(s) for name, s in project.segments.items()},
        rules=compile_rules(project.rules, project.campaigns),
    )
