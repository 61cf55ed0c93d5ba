"""Looks: each time the log's tickets decided something (a certification, a promotion's comparison), recorded with the
export it produced or judged, so that the next certification knows which look it is (its share of delta) and which
tickets earlier looks used."""

from __future__ import annotations

from pathlib import Path

from .store import dumps, utcnow


def record_look(log, kind: str, version: Path | None, result: dict) -> int:
    """Insert the look and mark the tickets it used; returns its id."""
    from sqlalchemy import and_, update

    from ..manifest import MANIFEST, sha256_of
    from .schema import decisions, looks

    guarantee = result.get("guarantee") or {}
    summary = {key: guarantee.get(key) for key in ("max_misrouting", "delta", "looks", "certified_on", "calibration")
               if key in guarantee}
    summary.update({key: result[key] for key in ("comparison", "decision") if key in result})
    fingerprint = sha256_of(Path(version) / MANIFEST)[:16] if version is not None else None
    used = list(result.get("used_ids") or [])
    with log.engine.begin() as connection:
        look_id = connection.execute(looks.insert().values(
            at=utcnow(), kind=kind, model_version=None if version is None else Path(version).name,
            model_fingerprint=fingerprint, tickets=len(used), summary=dumps(summary))).inserted_primary_key[0]
        for start in range(0, len(used), 500):
            connection.execute(update(decisions).where(and_(decisions.c.id.in_(used[start:start + 500]),
                                                            decisions.c.look_id.is_(None))).values(look_id=look_id))
    return int(look_id)
