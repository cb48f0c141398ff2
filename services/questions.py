"""Plain-language questions read as `/cro` commands, deterministically (no model, no
external service): "what's late at Apex?" → `milestone list ONC-301 --late org:Apex CRO`.

A question is normalised to words, then matched against a vocabulary built from the
record — study codes, organisation names and their short forms, KPI keys, labels and the
synonyms people use, people's names — and against intent cues (late, overdue, due, trend,
status, pending approvals, forecast). Each intent that could apply gives a reading: the
`/cro` command it stands for and a score from the cues and entities it uses. Only reading
commands are ever produced (status, lists, KPI show/trend, forecast): nothing typed in
plain language can write.

The caller runs the best reading when it is clearly ahead, and offers the two best as
buttons when it is not (`Answer.sure`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services.actor import Actor
from crobot.services.lookup import kpi_definitions, org_studies, study_org_ids
from crobot.services.permissions import reportable_kinds
from crobot.storage.models import Organization, Person

# Reading verbs: a plain-language question never runs anything else.
READ_ONLY = ("status", "forecast", "milestone list", "action list", "kpi show", "kpi trend")

# How clearly the best reading must lead the next to be acted on without asking.
MARGIN = 1.0
MIN_SCORE = 1.5

# Words people use for each KPI, beyond its key and label (lower case, single spaces).
KPI_SYNONYMS: dict[str, tuple[str, ...]] = {
    "enrollment": (
        "enrolment",
        "enrollment",
        "enrolled",
        "recruitment",
        "recruiting",
        "recruited",
        "randomisation",
        "randomization",
        "randomised",
        "randomized",
        "patients in",
        "subjects in",
    ),
    "screen_failure_rate": (
        "screen failure",
        "screen failures",
        "screen fail",
        "screen fails",
        "screen-failure",
        "screen failure rate",
        "sfr",
        "screening failure",
    ),
    "site_activation": ("site activation", "sites activated", "activated sites", "site start up"),
    "query_aging": (
        "query aging",
        "query ageing",
        "queries",
        "open queries",
        "query age",
        "data queries",
    ),
    "protocol_deviations": ("protocol deviations", "deviations", "pds", "deviation"),
    "compliance_rate": ("compliance", "compliance rate", "gcp compliance"),
    "cost_of_quality": ("cost of quality", "coq", "quality cost"),
    "supplier_performance": ("supplier performance", "vendor performance", "supplier score"),
    "data_entry_timeliness": (
        "data entry",
        "data-entry",
        "data entry timeliness",
        "crf entry",
        "ecrf entry",
    ),
    "customer_satisfaction": ("satisfaction", "customer satisfaction", "survey"),
    "otif_delivery": ("otif", "on time in full", "on-time-in-full", "deliveries on time"),
    "right_first_time": ("right first time", "rft", "batch failures", "batches right"),
    "batch_release_days": ("batch release", "release cycle", "qp release", "release time"),
    "open_capas": ("capa", "capas", "open capas", "corrective actions"),
    "staff_turnover": ("turnover", "staff turnover", "attrition", "cra turnover"),
    "training_compliance": ("protocol training", "training compliance"),
    "data_security_compliance": ("data security", "security compliance", "gdpr"),
    "resource_utilisation": ("utilisation", "utilization", "resource utilisation"),
    "sample_turnaround": ("sample turnaround", "result turnaround", "lab turnaround"),
}

# Intent cues: (phrase, weight). Phrases are matched on word boundaries.
CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "late": (
        ("late", 2.0),
        ("slipped", 2.0),
        ("slipping", 2.0),
        ("slip", 1.5),
        ("behind", 2.0),
        ("delayed", 2.0),
        ("delay", 1.5),
        ("missed", 1.5),
        ("miss", 1.5),
        ("behind schedule", 1.0),
        ("milestone", 1.0),
        ("milestones", 1.0),
    ),
    "open_milestones": (
        ("milestones", 1.5),
        ("milestone", 1.5),
        ("coming up", 1.5),
        ("upcoming", 1.5),
        ("due", 0.5),
        ("next", 0.5),
        ("open", 0.5),
    ),
    "overdue": (
        ("overdue", 2.5),
        ("past due", 2.5),
        ("owe", 2.0),
        ("owes", 2.0),
        ("owing", 2.0),
        ("outstanding", 1.5),
        ("action", 1.0),
        ("actions", 1.0),
        ("to do", 1.0),
        ("todo", 1.0),
        ("action items", 1.0),
        ("waiting on", 1.5),
        ("chase", 1.5),
        ("still open", 1.0),
    ),
    "actions": (
        ("actions", 1.5),
        ("action items", 2.0),
        ("action", 1.5),
        ("tasks", 1.5),
        ("to do", 1.5),
        ("todo", 1.5),
        ("my list", 1.5),
        ("on my plate", 2.0),
        ("assigned", 1.0),
    ),
    "trend": (
        ("trend", 2.5),
        ("trending", 2.5),
        ("over time", 2.0),
        ("going", 1.0),
        ("progress", 1.0),
        ("chart", 2.0),
        ("graph", 2.0),
        ("history", 1.5),
        ("evolution", 1.5),
        ("weeks", 0.5),
    ),
    "show": (
        ("show", 1.0),
        ("what is", 0.5),
        ("what's", 0.5),
        ("latest", 1.5),
        ("current", 1.5),
        ("how many", 1.0),
        ("value", 1.0),
        ("numbers", 1.0),
        ("figure", 1.0),
        ("last", 0.5),
        ("rate", 0.5),
    ),
    "status": (
        ("status", 2.5),
        ("overview", 2.0),
        ("summary", 2.0),
        ("how are we doing", 2.5),
        ("how is", 1.0),
        ("where are we", 2.5),
        ("big picture", 2.0),
        ("update", 1.0),
        ("state of", 1.5),
        ("health", 1.5),
    ),
    "approvals": (
        ("approval", 2.0),
        ("approvals", 2.0),
        ("approve", 2.0),
        ("sign off", 2.0),
        ("sign-off", 2.0),
        ("signoff", 2.0),
        ("pending", 1.0),
        ("waiting for me", 1.5),
        ("review", 1.0),
    ),
    "forecast": (
        ("forecast", 2.5),
        ("predict", 2.5),
        ("projection", 2.5),
        ("will we", 2.0),
        ("on track", 1.5),
        ("lpi", 2.0),
        ("last patient", 2.0),
        ("finish enrolment", 2.0),
        ("finish enrollment", 2.0),
        ("hit", 0.5),
        ("when will", 2.0),
        ("make it", 1.0),
    ),
}
ME = ("me", "my", "mine", "i", "i'm", "im", "myself")


@dataclass(frozen=True)
class Vocabulary:
    """What the record names: study codes, organisations (name → short forms), KPIs
    (key → label) and people (display name → user id)."""

    studies: Sequence[str]
    orgs: dict[str, tuple[str, ...]]
    kpis: dict[str, str]
    people: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    intent: str
    command: str  # what follows `/cro`
    score: float


@dataclass(frozen=True)
class Answer:
    readings: list[Reading]  # best first

    @property
    def best(self) -> Reading | None:
        return self.readings[0] if self.readings else None

    @property
    def sure(self) -> bool:
        if not self.readings or self.readings[0].score < MIN_SCORE:
            return False
        return len(self.readings) == 1 or self.readings[0].score - self.readings[1].score >= MARGIN


def normalise(text: str) -> str:
    """Lower case, accents off, Slack markup and punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"<[^>]*>", " ", text)  # a mention or link Slack sent
    text = text.replace("’", "'")
    text = re.sub(r"[^a-z0-9'\- ]+", " ", text)
    return f" {' '.join(text.split())} "


def _has(text: str, phrase: str) -> bool:
    return f" {phrase} " in text or f" {phrase}'s " in text or f" {phrase}s " in text


def _study(text: str, vocab: Vocabulary) -> str | None:
    for code in sorted(vocab.studies, key=len, reverse=True):
        flat = code.lower()
        if (
            _has(text, flat)
            or _has(text, flat.replace("-", ""))
            or _has(text, flat.replace("-", " "))
        ):
            return code
    return None


def org_forms(name: str) -> tuple[str, ...]:
    """How people refer to an organisation: its name, its first word, its initials, and
    the name without its legal or business suffix ("Apex CRO" → "apex")."""
    words = normalise(name).split()
    forms = {" ".join(words)}
    generic = {"cro", "cmo", "lab", "labs", "pharma", "inc", "ltd", "gmbh", "ag", "sa", "plc"}
    core = [w for w in words if w not in generic]
    if core:
        forms.add(" ".join(core))
        forms.add(core[0])
    if len(words) > 1:
        forms.add("".join(w[0] for w in words))
    return tuple(f for f in forms if len(f) >= 3)


KIND_WORDS = {
    "cro": ("cro", "the cro"),
    "cmo": ("cmo", "the cmo", "manufacturer"),
    "lab": ("lab", "the lab", "central lab", "laboratory"),
    "sponsor": ("sponsor", "the sponsor"),
}


def org_vocabulary(orgs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Short forms of each (name, kind): `org_forms`, plus the kind's words ("the lab")
    when one organisation alone is of that kind."""
    pairs = list(orgs)
    kinds = [kind for _, kind in pairs]
    out = {}
    for name, kind in pairs:
        extra = KIND_WORDS.get(kind, ()) if kinds.count(kind) == 1 else ()
        out[name] = (*org_forms(name), *extra)
    return out


def _org(text: str, vocab: Vocabulary) -> str | None:
    found = [
        (len(form), name)
        for name, forms in vocab.orgs.items()
        for form in forms
        if _has(text, form)
    ]
    return max(found)[1] if found else None


def _kpi(text: str, vocab: Vocabulary) -> str | None:
    found: list[tuple[int, str]] = []
    for key, label in vocab.kpis.items():
        for phrase in (key.replace("_", " "), normalise(label).strip(), *KPI_SYNONYMS.get(key, ())):
            phrase = normalise(phrase).strip()
            if phrase and _has(text, phrase):
                found.append((len(phrase), key))
    return max(found)[1] if found else None


def _person(text: str, vocab: Vocabulary) -> str | None:
    found = []
    for name, user in vocab.people.items():
        full = normalise(name).strip()
        first = full.split()[0] if full else ""
        if full and _has(text, full):
            found.append((len(full), user))
        elif len(first) >= 3 and _has(text, first):
            found.append((len(first), user))
    return max(found)[1] if found else None


def _weeks(text: str) -> int | None:
    m = re.search(r" (?:last|past) (\d{1,2}) weeks? ", text)
    if m:
        return int(m.group(1))
    m = re.search(r" (?:last|past) (\d{1,2}) months? ", text)
    return int(m.group(1)) * 4 if m else None


def _cue_score(text: str, intent: str) -> float:
    return sum(weight for phrase, weight in CUES[intent] if _has(text, phrase))


def read(question: str, vocab: Vocabulary) -> Answer:
    """Every reading of `question` that names what its command needs, best first."""
    text = normalise(question)
    study = _study(text, vocab)
    org = _org(text, vocab)
    kpi = _kpi(text, vocab)
    person = _person(text, vocab)
    me = any(f" {w} " in text for w in ME)  # exact words: "is" is not "i" + s
    weeks = _weeks(text)
    readings: list[Reading] = []

    def add(intent: str, command: str, bonus: float = 0.0, floor: float = 0.0) -> None:
        cue = max(_cue_score(text, intent), floor)
        if cue > 0:  # an intent the words speak of; what it names only adds to that
            readings.append(Reading(intent, " ".join(command.split()), cue + bonus))

    # Someone on one study means that one; on several, an unnamed study is the channel's.
    study = study or (vocab.studies[0] if len(vocab.studies) == 1 else None)
    where = study or ""
    org_opt = f'org:"{org}"' if org else ""
    if kpi:
        target = study
        if target:
            span = f"last:{weeks}w" if weeks else ""
            add("trend", f"kpi trend {target} {kpi}", 1.0 if weeks else 0.5)
            # "over the last 8 weeks" asks for those weeks' values: a span is a `show`.
            # A KPI named with no other cue asks for its values.
            add("show", f"kpi show {target} {kpi} {span}", 1.5 if weeks else 1.0, floor=0.5)
    owner = "mine" if me and not person else (f"<@{person}>" if person else "")
    add("overdue", f"action list {where} {owner} --overdue", 0.5 if owner else 0.0)
    add("actions", f"action list {where} {owner}", 0.5 if owner else 0.0)
    add("late", f"milestone list {where} --late {org_opt}", 0.5 if org else 0.0)
    add("open_milestones", f"milestone list {where} --open {org_opt}")
    add("status", f"status {where}", 0.5 if study else 0.0)
    add("approvals", f"status {where}")
    if not kpi or _cue_score(text, "forecast") >= 2:
        add("forecast", f"forecast {where}", 0.5 if study else 0.0)
    readings = _best_per_command(readings)
    readings.sort(key=lambda r: -r.score)
    return Answer(readings)


def is_read_only(command: str) -> bool:
    return command.split()[0] in READ_ONLY or " ".join(command.split()[:2]) in READ_ONLY


def _best_per_command(readings: Iterable[Reading]) -> list[Reading]:
    best: dict[str, Reading] = {}
    for r in readings:
        if r.command not in best or r.score > best[r.command].score:
            best[r.command] = r
    return list(best.values())


def vocabulary(session: Session, actor: Actor) -> Vocabulary:
    """What `actor` may name: the studies they are on, those studies' organisations, the
    KPIs of their organisation's kind (services/permissions.py `reportable_kinds`: a lab
    is not offered a CMO's KPIs; retired ones too, their history is readable), and the
    people of those organisations (nobody learns of other studies)."""
    studies = org_studies(session, actor.org_id) if actor.org_id is not None else []
    org_ids: set[int] = set()
    for study in studies:
        org_ids |= study_org_ids(session, study)
    orgs = list(
        session.execute(
            select(Organization.name, Organization.kind).where(Organization.id.in_(org_ids))
        )
    )
    people = session.execute(
        select(Person.display_name, Person.slack_user_id).where(Person.org_id.in_(org_ids))
    )
    kinds = reportable_kinds(actor)
    return Vocabulary(
        studies=[s.code for s in studies],
        orgs=org_vocabulary((name, kind.value) for name, kind in orgs),
        kpis={k.key: k.label for k in kpi_definitions(session) if kinds is None or k.kind in kinds},
        people={row.display_name: row.slack_user_id for row in people},
    )
