# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""How a rollback with data (``bluegreen rollback --with-data``) takes the schema back.

The schema goes back to the revision the previous release (the warm colour) was
deployed on:

    no migration since            -> switch   (traffic only; the schema is there already)
    every step since reversible   -> downgrade (traffic first, then the schema under it)
    otherwise, or asked for       -> restore  (the snapshot taken before the live release)

A restore loses every write accepted after its snapshot, so it is refused, saying what
would be lost, unless the operator accepts the loss or maintenance mode has been on on
every load balancer since before the snapshot was taken. The messages name what was
done in the words the journal, the report and the CLI show.

Everything here is pure (values in, values out), so the module and the tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from math import ceil
from typing import Any

METHODS = ("auto", "downgrade", "restore")


def method_error(method: str) -> str:
    """Why ``method`` is refused before anything is locked ('' for a known method)."""
    if method in METHODS:
        return ""
    return (
        f"rollback_data_method must be auto, downgrade or restore, not {method};"
        " nothing was changed"
    )


@dataclass(frozen=True)
class Releases:
    """The deploy records of the live release and of the one to go back to."""

    live: Mapping[str, Any] | None
    target: Mapping[str, Any] | None
    # The colour to go back to was deployed after the live one: traffic already went back
    # from it without its data (a plain or an automatic rollback).
    target_after_live: bool = False

    @property
    def target_revision(self) -> str | None:
        """The revision the previous release was deployed on, as its deploy journaled it
        (its own code may not be able to read a newer schema to tell)."""
        evidence = (self.target or {}).get("evidence") or {}
        migration = evidence.get("migration") or {}
        current = migration.get("current")
        return None if current is None else str(current)


def deployed_releases(records: Iterable[Mapping[str, Any]], live_colour: str) -> Releases:
    """The newest successful deploy to the live colour and the newest to the other one."""
    deploys = [r for r in records if r.get("step") == "deploy" and r.get("outcome") == "ok"]

    def colour(record: Mapping[str, Any]) -> Any:
        return (record.get("evidence") or {}).get("colour")

    live = [i for i, r in enumerate(deploys) if colour(r) == live_colour]
    target = [i for i, r in enumerate(deploys) if colour(r) != live_colour]
    return Releases(
        deploys[live[-1]] if live else None,
        deploys[target[-1]] if target else None,
        bool(live and target and target[-1] > live[-1]),
    )


def forward_refusal(live_version: str, target_version: str) -> str:
    """Why ``rollback --with-data`` must not go to a colour deployed after the live one."""
    target = target_version or "the release to go back to"
    live = live_version or "the live release"
    return (
        f"the colour to go back to runs {target}, deployed after the live {live}: traffic"
        " already went back from it without its data (a plain or an automatic rollback), so"
        f" a data rollback would go forward, not back. The schema is where it was when"
        f" traffic went back, and {live} runs on it. To go forward, release it again"
        f" (bluegreen release --version {target_version or '<version>'}); to move traffic"
        " only, bluegreen rollback. Nothing was changed"
    )


def maintenance_since(flag_mtimes: Sequence[float | None], load_balancers: int) -> str | None:
    """Since when maintenance mode has been on on every load balancer (the latest flag),
    rounded up to the second so that it never claims an earlier start than the truth;
    None unless it is on on all of them."""
    since = [float(m) for m in flag_mtimes if m is not None]
    if not since or len(since) != load_balancers:
        return None
    moment = datetime.fromtimestamp(ceil(max(since)), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".000000Z"


@dataclass(frozen=True)
class DataRollback:
    """The way back, or why there is none."""

    mode: str
    loses_writes: bool
    why_restore: str
    # A refusal that is a failed plan (exit 3): the method cannot work at all.
    failure: str
    # A refusal that is bad input (exit 2): the restore would lose acknowledged writes,
    # or the colour to go back to was deployed after the live one.
    refusal: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def why_restore(irreversible: Sequence[Mapping[str, Any]]) -> str:
    """Why the schema can only go back by a restore."""
    reasons = [f"{step.get('revision')}: {step.get('irreversible')}" for step in irreversible]
    return "; ".join(reasons) or "a restore was asked for: --method restore"


def data_rollback(
    method: str,
    plan: Mapping[str, Any] | None,
    snapshot: Mapping[str, Any] | None,
    since: str | None,
    accept_data_loss: bool,
    live_version: str,
    target_revision: str | None,
    target_after_live: bool = False,
    target_version: str = "",
) -> DataRollback:
    """How the data goes back, from the plan of the live release's migrations down to
    the previous release's revision and the snapshot taken before the live release; a
    colour deployed after the live one is refused (going there is not going back)."""
    if target_after_live:
        return DataRollback("switch", False, "", "", forward_refusal(live_version, target_version))
    plan = plan or {}
    irreversible = [p for p in plan.get("pending") or [] if p.get("irreversible")]
    if plan.get("direction", "none") != "downgrade":
        mode = "switch"
    elif not irreversible and method != "restore":
        mode = "downgrade"
    else:
        mode = "restore"
    started = (snapshot or {}).get("started")
    loses = not (since and started and since <= started)
    why = why_restore(irreversible)
    head = f"the schema of {live_version} cannot be downgraded to {target_revision}"
    failure = refusal = ""
    if mode == "restore" and method == "downgrade":
        failure = (
            f"{head}: {why}; nothing was changed. Use the default method (restore the snapshot"
            " taken before the release) or roll back traffic only (`bluegreen rollback`)"
        )
    elif mode == "restore" and not snapshot:
        failure = (
            f"{head} ({why}) and there is no snapshot of the release that put {live_version}"
            " live; nothing was changed. Roll back traffic only (`bluegreen rollback`), or"
            " restore a snapshot by hand (`bluegreen restore --list`)"
        )
    elif mode == "restore" and loses and not accept_data_loss:
        snap = snapshot or {}
        refusal = (
            f"{head} ({why}), so the data rollback would restore snapshot"
            f" {snap.get('snapshot_id')}, taken {started} before release"
            f" {snap.get('release_id')}: every write accepted since {started} would be lost"
            " (the current database is kept aside, not served). Nothing was changed. To"
            " accept, run `bluegreen rollback --with-data --accept-data-loss`"
            " (bluegreen_cli.rollback_accept_data_loss); or turn maintenance mode on and copy what"
            " you need first; or roll back traffic only with `bluegreen rollback`"
        )
    return DataRollback(mode, loses, why, failure, refusal)


def moved_revisions(previous: str, current: str) -> tuple[str, str]:
    """The revisions a downgrade moved from and to. Django's revision names every app's
    migration (comma-separated): only those that changed are named."""
    before, after = str(previous).split(","), str(current).split(",")
    moved_from = [r for r in before if r not in after] or before
    moved_to = [r for r in after if r not in before] or after
    return ",".join(moved_from), ",".join(moved_to)


def downgrade_message(previous: str, current: str, live_version: str) -> str:
    """The journal line of a downgrade."""
    moved_from, moved_to = moved_revisions(previous, current)
    return (
        f"schema downgraded from {moved_from} to {moved_to} with the migrations of"
        f" {live_version}; every row is kept"
    )


def rolled_back_message(
    mode: str,
    target_colour: str,
    target_version: str,
    live_colour: str,
    live_version: str,
    target_revision: str | None = None,
    downgrade: Mapping[str, Any] | None = None,
    snapshot: Mapping[str, Any] | None = None,
    loses_writes: bool = True,
) -> str:
    """The outcome's message of a finished data rollback."""
    if mode == "switch":
        done = f"the schema was at {target_revision} already, no data change was needed"
    elif mode == "downgrade":
        step = downgrade or {}
        moved_from, moved_to = moved_revisions(
            str(step.get("previous", "?")), str(step.get("current", "?"))
        )
        done = f"schema downgraded from {moved_from} to {moved_to} (every row kept)"
    else:
        snap = snapshot or {}
        done = (
            f"database restored from snapshot {snap.get('snapshot_id', '?')}"
            f" taken {snap.get('started', '?')}"
        )
        done += (
            "; the writes accepted since then were given up (--accept-data-loss)"
            if loses_writes
            else "; maintenance mode was on since before it, so no write was lost"
        )
    return (
        f"traffic is back on {target_colour} ({target_version}); {done};"
        f" {live_colour} ({live_version}) stays warm"
    )


def snapshot_of(
    snapshots: Iterable[Mapping[str, Any]], release: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The snapshot the live release took before it changed anything, if it is kept."""
    release_id = (release or {}).get("release_id") or ""
    return next((s for s in snapshots if s.get("release_id") == release_id), None)


def restore_refusal(snapshot_id: str, manifest: Mapping[str, Any], host: str) -> str:
    """Why a restore without confirmation is refused: what it would lose."""
    started = manifest.get("started")
    return (
        f"restoring snapshot {snapshot_id} (taken {started} on {host}, release"
        f" {manifest.get('release_id') or '?'}, revision {manifest.get('revision') or '?'})"
        f" replaces the live database: every write accepted after {started} would be lost"
        " (the current database is kept aside, not served). Nothing was changed. To accept,"
        f" run `bluegreen restore {snapshot_id} --yes` (bluegreen_cli.restore_confirm)"
    )


def restored_message(
    snapshot_id: str,
    manifest: Mapping[str, Any],
    kept_as: str | None,
    live_colour: str | None,
    maintenance_was_on: bool,
) -> str:
    """The outcome's message of a finished restore."""
    after = (
        "; maintenance mode stays on as it was before"
        if maintenance_was_on
        else " and users reach it again"
    )
    return (
        f"the database is back at snapshot {snapshot_id} (taken {manifest.get('started')});"
        f" the previous one is kept as {kept_as or '?'};"
        f" {live_colour or 'the live colour'} is healthy{after}"
    )


@dataclass(frozen=True)
class RestoreRequest:
    """What `bluegreen restore` was asked: list the snapshots, or restore one, confirmed
    only when the confirmation names the same snapshot."""

    snapshot: str
    listing: bool
    confirmed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_request(snapshot: str, confirm: str, listing: bool) -> RestoreRequest:
    """The restore asked for; ValueError when it names no snapshot and lists none."""
    named = snapshot.strip()
    if not listing and not named:
        raise ValueError(
            "name the snapshot to restore: bluegreen_cli.restore_snapshot (list them with"
            " bluegreen_cli.restore_list, or `bluegreen restore --list`)"
        )
    return RestoreRequest(named, listing, bool(named) and confirm.strip() == named)
