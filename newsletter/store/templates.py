"""Templates edited in the web UI, as SQL: immutable versions, publications, the published one.

A template row names the template; every save adds a ``template_version`` (numbered 1, 2, ...
per template, never changed afterwards). Publishing sets ``template.current_version`` and logs
a ``template_publication``; runs and previews read the published version
(:func:`published_version`), so saving a draft never changes what subscribers get.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, insert, select, update

from newsletter.tables import template_publication_table, template_table, template_version_table

T = template_table.c
V = template_version_table.c
P = template_publication_table.c


@dataclass(frozen=True)
class TemplateRow:
    """A template in the database: its published version and its newest version."""

    id: int
    name: str
    kind: str
    published: int | None
    latest: int | None
    updated_at: datetime


@dataclass(frozen=True)
class VersionRow:
    """One saved version's sources and who saved it when."""

    version: int
    mjml: str
    subject: str
    preheader: str
    text: str
    source_hash: str
    created_at: datetime
    author: str | None


@dataclass(frozen=True)
class Publication:
    version: int
    published_at: datetime
    published_by: str | None


def _rows(engine: Engine, name: str | None = None) -> list[TemplateRow]:
    latest = (
        select(V.template_id, func.max(V.version).label("latest"))
        .group_by(V.template_id)
        .subquery()
    )
    query = select(T.id, T.name, T.kind, T.current_version, latest.c.latest, T.updated_at).join(
        latest, latest.c.template_id == T.id, isouter=True
    )
    if name is not None:
        query = query.where(T.name == name)
    with engine.connect() as c:
        return [TemplateRow(*row) for row in c.execute(query.order_by(T.name))]


def list_templates(engine: Engine) -> list[TemplateRow]:
    """Every template in the database, by name."""
    return _rows(engine)


def find_template(engine: Engine, *, name: str) -> TemplateRow | None:
    """The database template called `name`, or None."""
    found = _rows(engine, name)
    return found[0] if found else None


def ensure_template(engine: Engine, *, name: str, kind: str, now: datetime) -> int:
    """The id of template `name`, created (with no version yet) when missing."""
    with engine.begin() as c:
        found = c.execute(select(T.id).where(T.name == name)).scalar()
        if found is not None:
            return int(found)
        table = template_table
        return int(
            c.execute(
                insert(table).values(name=name, kind=kind, updated_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
        )


_VERSION_COLUMNS = (
    V.version,
    V.mjml,
    V.subject,
    V.preheader,
    V.text,
    V.source_hash,
    V.created_at,
    V.author,
)


def get_version(engine: Engine, *, template_id: int, version: int | None) -> VersionRow | None:
    """One version of a template (the newest when `version` is None), or None."""
    query = select(*_VERSION_COLUMNS).where(V.template_id == template_id)
    query = query.where(V.version == version) if version is not None else query
    with engine.connect() as c:
        row = c.execute(query.order_by(V.version.desc()).limit(1)).first()
    return VersionRow(*row) if row else None


def list_versions(engine: Engine, *, template_id: int) -> list[VersionRow]:
    """Every version of a template, newest first."""
    query = select(*_VERSION_COLUMNS).where(V.template_id == template_id)
    with engine.connect() as c:
        return [VersionRow(*row) for row in c.execute(query.order_by(V.version.desc()))]


def add_version(
    engine: Engine,
    *,
    template_id: int,
    mjml: str,
    subject: str,
    preheader: str,
    text: str,
    source_hash: str,
    author: str | None,
    now: datetime,
) -> int:
    """Store a new version (number = newest + 1; the unique constraint guards races)."""
    with engine.begin() as c:
        newest = c.execute(select(func.max(V.version)).where(V.template_id == template_id)).scalar()
        number = int(newest or 0) + 1
        c.execute(
            insert(template_version_table).values(
                template_id=template_id,
                version=number,
                mjml=mjml,
                subject=subject,
                preheader=preheader,
                text=text,
                source_hash=source_hash,
                created_at=now,
                author=author,
            )
        )
        c.execute(update(template_table).where(T.id == template_id).values(updated_at=now))
    return number


def publish_version(
    engine: Engine, *, template_id: int, version: int, by: str | None, now: datetime
) -> None:
    """Make `version` the one runs use, and log who published it when."""
    with engine.begin() as c:
        c.execute(
            update(template_table)
            .where(T.id == template_id)
            .values(current_version=version, updated_at=now)
        )
        c.execute(
            insert(template_publication_table).values(
                template_id=template_id, version=version, published_at=now, published_by=by
            )
        )


def list_publications(engine: Engine, *, template_id: int) -> list[Publication]:
    """Every publish of a template, newest first."""
    query = select(P.version, P.published_at, P.published_by).where(P.template_id == template_id)
    with engine.connect() as c:
        rows = c.execute(query.order_by(P.published_at.desc(), P.id.desc())).all()
    return [Publication(*row) for row in rows]


def published_version(engine: Engine, *, name: str) -> VersionRow | None:
    """The published version of template `name` (None: not in the database or unpublished)."""
    query = (
        select(*_VERSION_COLUMNS)
        .join(template_table, T.id == V.template_id)
        .where(T.name == name, V.version == T.current_version)
    )
    with engine.connect() as c:
        row = c.execute(query).first()
    return VersionRow(*row) if row else None
