"""The sensor's decision as a pure function: database state + Dagster state -> actions.
No Dagster daemon, no database."""

from __future__ import annotations

from dj_dagster.orchestration.reconcile import Actions, DagsterState, DatabaseState, Roles, reconcile

ROLES = Roles(computed=("db.__stats",), observed=("db.session",), global_computed=("db.__total",),
              global_data=("db.#rig",))
P = ("s=1", "s=2", "s=3")


def state(**kw) -> DatabaseState:
    base = dict(root_partitions=P, rows={"db.session": set(P), "db.__stats": set(P)},
                runnable={"db.__stats": set()}, blocked={"db.__stats": set()}, counts={"db.#rig": 2})
    base.update(kw)
    return DatabaseState(**base)


def seen(**kw) -> DagsterState:
    base = dict(partitions=frozenset(P), materialized={"db.session": set(P), "db.__stats": set(P)},
                counts={"db.#rig": 2})
    base.update(kw)
    return DagsterState(**base)


def test_in_sync_means_no_action():
    actions = reconcile(ROLES, state(), seen())
    assert not actions and actions.runs == [] and actions.materialized == []


def test_root_rows_add_and_delete_partitions():
    actions = reconcile(ROLES, state(root_partitions=("s=1", "s=4")), seen())
    assert actions.add_partitions == ["s=4"]
    assert actions.delete_partitions == ["s=2", "s=3"]


def test_deleted_computed_rows_mark_stale_and_request_a_run():
    """Rows of s=2 deleted: the partition shows materialized, work is missing again."""
    db = state(rows={"db.session": set(P), "db.__stats": {"s=1", "s=3"}}, runnable={"db.__stats": {"s=2"}})
    actions = reconcile(ROLES, db, seen())
    assert actions.runs == ["s=2"]
    assert actions.stale == [("db.__stats", "s=2")]
    # the same delete, once more later (the run settled it in between): asked again, not deduplicated
    again = reconcile(ROLES, db, seen())
    assert again.runs == ["s=2"]


def test_one_run_per_partition_in_flight():
    db = state(runnable={"db.__stats": {"s=1", "s=2", "s=3"}}, rows={"db.session": set(P), "db.__stats": {"s=1"}})
    first = reconcile(ROLES, db, seen(materialized={"db.session": set(P)}))
    assert first.runs == list(P)
    # partial progress while the runs are queued or running: no new request, no runless event
    partial = state(runnable={"db.__stats": {"s=2", "s=3"}})
    second = reconcile(ROLES, partial, seen(materialized={"db.session": set(P)}, in_flight=frozenset(P)))
    assert second.runs == [] and second.materialized == [] and second.stale == []


def test_work_done_outside_dagster_is_recorded_once():
    actions = reconcile(ROLES, state(), seen(materialized={"db.session": set(P), "db.__stats": {"s=1"}}))
    assert actions.materialized == [("db.__stats", "s=2"), ("db.__stats", "s=3")]
    assert actions.runs == []


def test_failed_keys_are_not_retried_but_marked_once():
    db = state(blocked={"db.__stats": {"s=2"}}, rows={"db.session": set(P), "db.__stats": {"s=1", "s=3"}})
    first = reconcile(ROLES, db, seen())
    assert first.runs == [] and first.stale == [("db.__stats", "s=2")]
    assert first.cursor_stale == {"db.__stats": ["s=2"]}
    second = reconcile(ROLES, db, seen(stale={"db.__stats": {"s=2"}}))
    assert second.stale == [] and not second
    # the key is fixed and populated outside Dagster: recorded as materialized again
    fixed = reconcile(ROLES, state(), seen(stale={"db.__stats": {"s=2"}}))
    assert fixed.materialized == [("db.__stats", "s=2")] and fixed.cursor_stale == {}


def test_observed_tables_follow_their_rows():
    roles = Roles(observed=("db.session", "db._event"))
    db = state(rows={"db.session": set(P), "db._event": {"s=1"}})
    first = reconcile(roles, db, seen(materialized={"db.session": set(P), "db._event": {"s=3"}}))
    assert first.materialized == [("db._event", "s=1")]
    assert first.stale == [("db._event", "s=3")] and first.runs == []
    second = reconcile(roles, db, seen(materialized={"db.session": set(P), "db._event": {"s=1", "s=3"}},
                                       stale={"db._event": {"s=3"}}))
    assert not second


def test_global_tables():
    changed = reconcile(ROLES, state(counts={"db.#rig": 3}), seen())
    assert changed.materialized == [("db.#rig", None)] and changed.cursor_counts == {"db.#rig": 3}
    wanted = reconcile(ROLES, state(global_runnable=True), seen())
    assert wanted.global_run
    busy = reconcile(ROLES, state(global_runnable=True), seen(global_in_flight=True))
    assert not busy.global_run and isinstance(busy, Actions)
