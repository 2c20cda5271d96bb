"""The RULE kind: a marketing rule per file, ``rules/<name>.sql`` (DESIGN §11).

A rule is a trigger, a condition and ordered actions, with priority, an exclusion group,
a first-N limit, per-customer frequency caps, quiet hours and a holdout ratio. The header
holds the settings and the message templates; the body (after the header, positions
kept) is the rule itself, in the binary or the ternary form::

    RULE (
      name drawdown_repayment_coupon,
      owner 'team:marketing',
      trigger drawdown,
      templates (repay_sms '您的{principal}元借款首期{amount_due}元将于{due_date}到期'),
    );
    principal >= 1000
      -> issue_coupon repayment_interest_free
      && touch sms repay_sms at due_date 10:00

    -- or: condition ? actions : actions   (``nothing`` is an empty action list)

Triggers: ``drawdown``, ``first_drawdown``, ``first_drawdown_in_campaign CAMPAIGN``,
``credit_granted``, ``repayment``, ``installment_due [+N|-N]`` (``-3``: three days before
the due date), ``segment SEGMENT`` (customers who entered it that day) and ``schedule``
(every customer, every day). The condition is the tag expression language
(:mod:`project.expressions`) over the tags as of the day plus the trigger's event fields
(:data:`EVENT_FIELDS`). Actions: ``issue_coupon CAMPAIGN`` and ``touch CHANNEL TEMPLATE
[at event|due_date [+N|-N] [HH:MM]]``. A template's ``{placeholders}`` name tags, event
fields, ``customer_id`` or ``as_of``. Every problem is located at ``file:line:col``;
references to tags, segments and campaigns are checked with the other definitions
(:mod:`project.references`).

Holdout membership is deterministic (:func:`holdout_bucket`): the same customer is in or
out of a rule's control group on every day, re-run and version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot import exp

from kequn.errors import KequnError, Location, ParseError, ValidationError, did_you_mean
from kequn.errors import location_at as _at
from kequn.header import DefinitionFile, HeaderField
from kequn.names import name_problem
from project import fields as f
from project.expressions import parse_expression, referenced_names

CHANNELS = ("sms", "wechat", "app_message", "app_slot", "telemarketing", "push")
TRIGGERS = ("drawdown", "first_drawdown", "first_drawdown_in_campaign", "credit_granted",
            "repayment", "installment_due", "segment", "schedule")
DECISIONS = ("act", "control", "capped", "excluded", "quiet_delayed")
HOLDOUT_BUCKETS = 10_000
DEFAULT_SEND_TIME = (10, 0)
"""``at <day>`` without a time sends at 10:00 Asia/Shanghai."""
DEFAULT_QUIET = ((21, 0), (9, 0))

_LOAN = {"loan_id": "integer", "principal": "decimal", "term_months": "integer",
         "loan_channel": "string", "asset_party": "string", "funding_party": "string",
         "due_date": "date", "amount_due": "decimal"}
_INSTALLMENT = {"loan_id": "integer", "installment_no": "integer", "due_date": "date",
                "amount_due": "decimal"}
EVENT_FIELDS: dict[str, dict[str, str]] = {
    "drawdown": _LOAN,
    "first_drawdown": _LOAN,
    "first_drawdown_in_campaign": _LOAN,
    "credit_granted": {"application_id": "integer", "granted_limit": "decimal",
                       "credit_method": "string"},
    "repayment": {**_INSTALLMENT, "days_late": "integer"},
    "installment_due": dict(_INSTALLMENT),
    "segment": {},
    "schedule": {},
}
"""The fields each trigger's event offers to conditions and templates (they shadow tags of
the same name). ``due_date``/``amount_due`` of a loan are its first installment's."""
ALWAYS = {"customer_id": "integer", "as_of": "date"}
"""Fields every rule can read in a template."""

SAMPLE = """\
RULE (
  name drawdown_repayment_coupon,
  owner 'team:marketing',
  trigger drawdown,
  templates (repay_sms '首期{amount_due}元将于{due_date}到期'),
);
TRUE -> issue_coupon repayment_interest_free && touch sms repay_sms at due_date 10:00"""


def _trigger(item: HeaderField) -> Trigger:
    value = f.text(item).strip()
    words = value.split()
    where = item.value_location
    kind = words[0].lower() if words else ""
    if kind not in TRIGGERS:
        raise ValidationError(f"unknown trigger '{value}' (triggers: {', '.join(TRIGGERS)})",
                              where, hint=did_you_mean(kind, TRIGGERS))
    args = words[1:]
    if kind in ("segment", "first_drawdown_in_campaign"):
        what = "segment" if kind == "segment" else "campaign"
        if len(args) != 1 or name_problem(args[0]):
            raise ValidationError(f"trigger {kind} takes one {what} name: "
                                  f"'{kind} <{what}>'", where)
        return Trigger(kind, args[0], where)
    if kind == "installment_due":
        if len(args) > 1 or (args and not re.fullmatch(r"[+-]?\d+", args[0])):
            raise ValidationError("trigger installment_due takes an optional offset in days, "
                                  "e.g. 'installment_due -3' (three days before the due date)",
                                  where)
        return Trigger(kind, "", where, int(args[0]) if args else 0)
    if args:
        raise ValidationError(f"trigger {kind} takes no argument", where)
    return Trigger(kind, "", where)


def _holdout(item: HeaderField) -> float:
    value = f.ratio(none=False)(item)
    if value >= 1:
        raise ValidationError(f"'holdout' must be below 1 (100%), not {f.text(item)}",
                              item.value_location)
    return value


def _clock(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return int(match[1]), int(match[2])


def _quiet(item: HeaderField) -> tuple[tuple[int, int], tuple[int, int]] | None:
    value = f.text(item).strip()
    if value.lower() in ("off", "none"):
        return None
    parts = value.split("-")
    ends = [_clock(p) for p in parts] if len(parts) == 2 else []
    if len(ends) != 2 or None in ends:
        raise ValidationError(f"'quiet_hours' must be 'HH:MM-HH:MM' or off, not '{value}'",
                              item.value_location)
    return ends[0], ends[1]  # type: ignore[return-value]


FIELDS: tuple[f.Field, ...] = (
    f.Field("name", f.name("rule"), required=True),
    f.Field("owner", f.team, required=True),
    f.Field("description", f.text, default=""),
    f.Field("trigger", _trigger, required=True),
    f.Field("templates", lambda item: item, help="(name 'text with {placeholders}', ...)"),
    f.Field("priority", f.integer(), default=0),
    f.Field("exclusion_group", f.name("exclusion group")),
    f.Field("first_n", f.integer(minimum=1)),
    f.Field("max_touches_per_day", f.integer(minimum=0), default=2),
    f.Field("max_touches_per_week", f.integer(minimum=0), default=5),
    f.Field("quiet_hours", _quiet, default=DEFAULT_QUIET),
    f.Field("holdout", _holdout, default=0.0),
)


@dataclass(frozen=True)
class Trigger:
    """What starts the rule: ``kind``, its argument (segment or campaign) and offset."""

    kind: str
    argument: str
    location: Location
    offset_days: int = 0

    def describe(self) -> str:
        """The trigger as written, e.g. ``segment wake_up`` or ``installment_due -3``."""
        if self.kind == "installment_due" and self.offset_days:
            return f"installment_due {self.offset_days:+d}"
        return f"{self.kind} {self.argument}".strip()


@dataclass(frozen=True)
class Placeholder:
    """One ``{name}`` in a template, located."""

    name: str
    location: Location


@dataclass(frozen=True)
class Template:
    """A message text with ``{placeholders}``."""

    name: str
    text: str
    location: Location
    placeholders: tuple[Placeholder, ...] = ()

    def render(self, values: dict[str, object]) -> str:
        """The text with each placeholder replaced (NULL renders as an empty string)."""
        return re.sub(r"\{(\w+)\}", lambda m: _show(values.get(m[1])), self.text)


def _show(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


@dataclass(frozen=True)
class Action:
    """``issue_coupon CAMPAIGN`` or ``touch CHANNEL TEMPLATE [at BASE [±N] [HH:MM]]``."""

    kind: str
    location: Location
    campaign: str = ""
    channel: str = ""
    template: str = ""
    at: str = ""
    """'' (as soon as the day's rule runs), 'event' (the trigger day) or 'due_date'."""
    days: int = 0
    time: tuple[int, int] | None = None

    def describe(self) -> str:
        """The action as it would be written."""
        if self.kind == "issue_coupon":
            return f"issue_coupon {self.campaign}"
        text = f"touch {self.channel} {self.template}"
        if self.at:
            text += f" at {self.at}" + (f" {self.days:+d}d" if self.days else "")
            if self.time:
                text += f" {self.time[0]:02d}:{self.time[1]:02d}"
        return text


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule definition; see the module docstring."""

    name: str
    owner: str
    description: str
    definition: DefinitionFile
    trigger: Trigger
    condition: exp.Expression
    then: tuple[Action, ...]
    otherwise: tuple[Action, ...] | None
    """The ternary form's second branch; None in the binary form (no match, no order)."""
    templates: dict[str, Template] = field(default_factory=dict)
    priority: int = 0
    exclusion_group: str | None = None
    first_n: int | None = None
    max_touches_per_day: int = 2
    max_touches_per_week: int = 5
    quiet_hours: tuple[tuple[int, int], tuple[int, int]] | None = DEFAULT_QUIET
    holdout: float = 0.0

    @property
    def path(self) -> Path:
        """The definition file."""
        return self.definition.path

    @property
    def version_hash(self) -> str:
        """SHA-256 of the file's text (16 hex digits): the rule's version."""
        return hashlib.sha256(self.definition.text.encode("utf-8")).hexdigest()[:16]

    definition_hash = version_hash

    @property
    def event_fields(self) -> dict[str, str]:
        """The trigger's event fields and their types."""
        return EVENT_FIELDS[self.trigger.kind]

    @property
    def actions(self) -> tuple[Action, ...]:
        """Every action of both branches, in order."""
        return self.then + (self.otherwise or ())

    @property
    def campaigns(self) -> tuple[str, ...]:
        """Campaigns the rule issues coupons of (and a trigger's campaign), each once."""
        names = [a.campaign for a in self.actions if a.kind == "issue_coupon"]
        if self.trigger.kind == "first_drawdown_in_campaign":
            names.append(self.trigger.argument)
        return tuple(dict.fromkeys(names))

    @property
    def segment(self) -> str | None:
        """The segment a ``segment`` trigger watches."""
        return self.trigger.argument if self.trigger.kind == "segment" else None

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Names the touched templates read, each once."""
        used = {a.template for a in self.actions if a.kind == "touch"}
        return tuple(dict.fromkeys(p.name for t in self.templates.values() if t.name in used
                                   for p in t.placeholders))

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags the condition and the templates read (not event fields)."""
        names = [*referenced_names(self.condition), *self.placeholders]
        local = {**self.event_fields, **ALWAYS}
        return tuple(n for n in dict.fromkeys(names) if n not in local)

    @property
    def needs_due_date(self) -> bool:
        """Whether an action is timed relative to a due date."""
        return any(a.at == "due_date" for a in self.actions)


def holdout_bucket(rule: str, customer_id: int) -> int:
    """The customer's holdout bucket for ``rule``, 0..9999: the first 32 bits of
    MD5('<rule>:<customer_id>') mod 10000. A customer is held out when the bucket is below
    ``holdout * 10000``; the compiled SQL computes the same number.

    >>> holdout_bucket("r", 1)
    8118
    """
    digest = hashlib.md5(f"{rule}:{int(customer_id)}".encode()).hexdigest()
    return int(digest[:8], 16) % HOLDOUT_BUCKETS


# -- the body: condition -> actions | condition ? actions : actions -------------------------

def _mask(text: str) -> str:
    """``text`` with quoted strings and ``--`` comments blanked (so separators inside
    them are not seen); newlines and positions kept."""
    out = list(text)
    i, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote or ch in ("'", '"'):
            if quote and ch == quote:
                quote = ""
            elif not quote:
                quote = ch
            if ch != "\n":
                out[i] = " "
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        i += 1
    return "".join(out)


def _top_level(masked: str, start: int, end: int, token: str) -> int:
    """Offset of the first ``token`` outside parentheses in ``masked[start:end]``, or -1.
    A ``:`` between two digits (a time, ``10:00``) is not a separator."""
    depth = 0
    for i in range(start, end):
        ch = masked[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and masked.startswith(token, i):
            if token == ":" and i > 0 and masked[i - 1].isdigit() and masked[i + 1:i + 2].isdigit():
                continue
            return i
    return -1


_WORD = re.compile(r"[^\s]+")


def _parse_actions(text: str, masked: str, start: int, end: int, path: Path,
                   errors: list[KequnError]) -> tuple[Action, ...]:
    """The ``a1 && a2`` list in ``text[start:end]``; ``nothing`` is an empty list."""
    pieces: list[tuple[int, int]] = []
    cut = start
    while True:
        at = _top_level(masked, cut, end, "&&")
        if at < 0:
            pieces.append((cut, end))
            break
        pieces.append((cut, at))
        cut = at + 2
    actions: list[Action] = []
    for piece_start, piece_end in pieces:
        words = [(m.group(), piece_start + m.start())
                 for m in _WORD.finditer(masked[piece_start:piece_end])]
        if not words:
            errors.append(ParseError("expected an action (issue_coupon CAMPAIGN, touch CHANNEL "
                                     "TEMPLATE [at ...] or nothing)",
                                     _at(path, text, piece_start)))
            continue
        if len(pieces) == 1 and len(words) == 1 and words[0][0].lower() == "nothing":
            return ()
        try:
            actions.append(_action(words, text, path))
        except KequnError as exc:
            errors.append(exc)
    return tuple(actions)


def _action(words: list[tuple[str, int]], text: str, path: Path) -> Action:
    verb, offset = words[0]
    where = _at(path, text, offset)
    verb = verb.lower()
    if verb == "issue_coupon":
        if len(words) != 2 or name_problem(words[1][0]):
            raise ParseError("write 'issue_coupon CAMPAIGN'", where)
        return Action("issue_coupon", _at(path, text, words[1][1]), campaign=words[1][0])
    if verb != "touch":
        raise ParseError(f"unknown action '{words[0][0]}' (issue_coupon, touch or nothing)",
                         where, hint=did_you_mean(verb, ("issue_coupon", "touch", "nothing")))
    if len(words) < 3:
        raise ParseError("write 'touch CHANNEL TEMPLATE [at event|due_date [+N|-N] [HH:MM]]'",
                         where)
    channel, channel_at = words[1]
    if channel not in CHANNELS:
        raise ValidationError(f"unknown channel '{channel}' (channels: {', '.join(CHANNELS)})",
                              _at(path, text, channel_at), hint=did_you_mean(channel, CHANNELS))
    template = words[2][0]
    base, days, clock = "", 0, None
    rest = words[3:]
    if rest:
        if rest[0][0].lower() != "at" or len(rest) < 2:
            raise ParseError("after the template write 'at event|due_date [+N|-N] [HH:MM]'",
                             _at(path, text, rest[0][1]))
        base = rest[1][0].lower()
        if base not in ("event", "due_date"):
            raise ParseError(f"'at' takes event or due_date, not '{rest[1][0]}'",
                             _at(path, text, rest[1][1]))
        for word, at in rest[2:]:
            if re.fullmatch(r"[+-]\d+d?", word):
                days = int(word.rstrip("d"))
            elif _clock(word) is not None:
                clock = _clock(word)
            else:
                raise ParseError(f"expected a day offset (+2d) or a time (10:00), not '{word}'",
                                 _at(path, text, at))
    return Action("touch", where, channel=channel, template=template, at=base, days=days,
                  time=clock or (DEFAULT_SEND_TIME if base else None))


def _templates(d: DefinitionFile, item: HeaderField | None) -> dict[str, Template]:
    """``templates (name 'text', ...)`` with each placeholder located."""
    if item is None:
        return {}
    found: dict[str, Template] = {}
    text = d.text
    span = text[item.start:item.end]
    pattern = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s+'((?:[^']|'')*)'")
    matched = list(pattern.finditer(span))
    leftover = pattern.sub("", span).replace(",", " ").strip("() \n\t")
    if not matched or leftover:
        raise ValidationError("write templates as (name 'text with {placeholders}', ...)",
                              item.value_location)
    for m in matched:
        name = m[1]
        body_start = item.start + m.start(2)
        where = _at(d.path, text, item.start + m.start(1))
        if name in found:
            raise ValidationError(f"template '{name}' is given twice", where)
        places = tuple(Placeholder(p[1], _at(d.path, text, body_start + p.start()))
                       for p in re.finditer(r"\{(\w*)\}", m[2]))
        for place in places:
            if not place.name:
                raise ValidationError("empty placeholder '{}'", place.location)
        found[name] = Template(name, m[2].replace("''", "'"), where, places)
    return found


def build_rule(d: DefinitionFile, values: f.Values, errors: list[KequnError],
               root: Path) -> Rule | None:
    """Turn one parsed RULE file into a Rule; every problem goes to ``errors``."""
    before = len(errors)
    templates: dict[str, Template] = {}
    try:
        templates = _templates(d, values["templates"])
    except KequnError as exc:
        errors.append(exc)
    text, path = d.text, d.path
    masked = _mask(d.body)
    stripped = masked.lstrip(" \n\t\r;")
    if not stripped.strip():
        errors.append(ValidationError(
            "a rule needs its body after the header: 'CONDITION -> ACTIONS' or "
            "'CONDITION ? ACTIONS : ACTIONS'", d.body_location,
            hint="for example: TRUE -> issue_coupon my_campaign && touch sms my_template"))
        return None
    start = len(masked) - len(stripped)
    end = len(text)
    arrow = _top_level(masked, start, end, "->")
    ask = _top_level(masked, start, end, "?")
    condition: exp.Expression | None = None
    then: tuple[Action, ...] = ()
    otherwise: tuple[Action, ...] | None = None
    if arrow < 0 and ask < 0:
        errors.append(ParseError("expected '->' (CONDITION -> ACTIONS) or '?' (CONDITION ? "
                                 "ACTIONS : ACTIONS) in the rule", _at(path, text, start)))
        return None
    if arrow >= 0 and (ask < 0 or arrow < ask):
        split, then_start, then_end = arrow, arrow + 2, end
    else:
        colon = _top_level(masked, ask + 1, end, ":")
        if colon < 0:
            errors.append(ParseError("a rule with '?' needs ': ACTIONS' for the other case",
                                     _at(path, text, ask)))
            return None
        split, then_start, then_end = ask, ask + 1, colon
        otherwise = _parse_actions(text, masked, colon + 1, end, path, errors)
    then = _parse_actions(text, masked, then_start, then_end, path, errors)
    try:
        condition = parse_expression(text, path, start, split)
    except KequnError as exc:
        errors.append(exc)
    trigger: Trigger | None = values["trigger"]
    for action in (*then, *(otherwise or ())):
        if action.kind == "touch" and action.template not in templates and values.ok("templates"):
            errors.append(ValidationError(
                f"unknown template '{action.template}'"
                + ("" if templates else " (the header has no templates (...))"),
                action.location, hint=did_you_mean(action.template, templates)))
        if action.at == "due_date" and trigger is not None \
                and "due_date" not in EVENT_FIELDS[trigger.kind]:
            errors.append(ValidationError(
                f"'at due_date' needs a trigger with a due date (drawdown, repayment, "
                f"installment_due...), not {trigger.kind}", action.location))
    if len(errors) > before or condition is None or trigger is None \
            or not values.ok("name", "owner", "trigger"):
        return None
    return Rule(
        name=values["name"], owner=values["owner"], description=values["description"],
        definition=d, trigger=trigger, condition=condition, then=then, otherwise=otherwise,
        templates=templates, priority=values["priority"],
        exclusion_group=values["exclusion_group"], first_n=values["first_n"],
        max_touches_per_day=values["max_touches_per_day"],
        max_touches_per_week=values["max_touches_per_week"],
        quiet_hours=values["quiet_hours"], holdout=values["holdout"],
    )
