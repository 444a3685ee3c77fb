"""The sensor's decision, as a pure function: what the database holds and what Dagster
shows in, the actions that make Dagster show the truth out. No Dagster and no database
calls here, so every rule is unit-tested with plain values.

Per partition (one root row) and per group (a master table with its parts):

==========================  ===================================  =========================
database                    Dagster                              action
==========================  ===================================  =========================
root row added              no partition                         add the partition
root row deleted            partition exists                     delete the partition
keys left to compute        a run for the partition in flight    nothing (one run at most)
keys left to compute        no run in flight                     request a run; if the
                                                                 partition shows as
                                                                 materialized, mark it stale
only failed keys left       materialized                         mark it stale (once)
complete, rows present      not materialized (or marked stale)   record a runless
                                                                 materialization
observed table: rows        not materialized                     runless materialization
observed table: no rows     materialized                         mark it stale (once)
==========================  ===================================  =========================

"Observed" groups are those filled outside ``make`` (Manual tables, and Imported or
Computed tables without a make, or whose make only raises NotImplementedError)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Roles:
    """Which groups play which part; group names are the masters' full table names."""

    computed: tuple[str, ...] = ()  # partitioned groups filled by make
    observed: tuple[str, ...] = ()  # partitioned groups filled outside make
    global_computed: tuple[str, ...] = ()  # unpartitioned groups filled by make
    global_data: tuple[str, ...] = ()  # unpartitioned tables recorded by row count


@dataclass(frozen=True)
class DatabaseState:
    """What the database holds, by partition key."""

    root_partitions: tuple[str, ...] = ()  # one per root row, in the database's order
    rows: dict[str, set[str]] = field(default_factory=dict)  # group -> partitions with rows
    runnable: dict[str, set[str]] = field(default_factory=dict)  # group -> partitions with keys to compute
    blocked: dict[str, set[str]] = field(default_factory=dict)  # group -> partitions with failed keys
    counts: dict[str, int] = field(default_factory=dict)  # global data table -> row count
    global_runnable: bool = False  # an unpartitioned computed table has keys to compute


@dataclass(frozen=True)
class DagsterState:
    """What Dagster shows, plus what earlier evaluations reported (the cursor)."""

    partitions: frozenset[str] = frozenset()
    materialized: dict[str, set[str]] = field(default_factory=dict)  # group -> partitions
    in_flight: frozenset[str] = frozenset()  # partitions targeted by queued or running runs
    global_in_flight: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # global data counts last recorded
    stale: dict[str, set[str]] = field(default_factory=dict)  # group -> partitions marked stale


@dataclass
class Actions:
    add_partitions: list[str] = field(default_factory=list)
    delete_partitions: list[str] = field(default_factory=list)
    materialized: list[tuple[str, str | None]] = field(default_factory=list)  # (group, partition or None)
    stale: list[tuple[str, str]] = field(default_factory=list)  # (group, partition) newly marked
    runs: list[str] = field(default_factory=list)  # partitions to run
    global_run: bool = False
    cursor_stale: dict[str, list[str]] = field(default_factory=dict)
    cursor_counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.add_partitions or self.delete_partitions or self.materialized or self.stale
                    or self.runs or self.global_run)


def reconcile(roles: Roles, db: DatabaseState, dagster: DagsterState, max_adds: int = 25_000,
              max_runs: int = 50, max_events: int = 10_000) -> Actions:
    """Compare the two states and say what to do; see the module's table for the rules."""
    out = Actions()
    root = list(db.root_partitions)
    present = set(root)
    out.add_partitions = [k for k in root if k not in dagster.partitions][:max_adds]
    out.delete_partitions = sorted(dagster.partitions - present)
    known = (set(dagster.partitions) | set(out.add_partitions)) - set(out.delete_partitions)

    events = 0
    runs: set[str] = set()
    for group in (*roles.computed, *roles.observed):
        rows = db.rows.get(group, set()) & known
        done = dagster.materialized.get(group, set())
        stale = dagster.stale.get(group, set()) & known
        if group in roles.computed:
            runnable = db.runnable.get(group, set()) & known
            blocked = db.blocked.get(group, set()) & known
            wanted = runnable - dagster.in_flight
            runs |= wanted
            newly_stale = ((wanted | (blocked - dagster.in_flight)) & done) - stale
            complete_with_rows = rows - runnable - blocked - dagster.in_flight
            # a requested run settles the partition itself (materialized or failed)
            waiting = blocked - runnable - dagster.in_flight
        else:
            newly_stale = (done - rows) - stale
            complete_with_rows = rows
            waiting = known - rows
        for k in sorted(complete_with_rows):
            if (k not in done or k in stale) and events < max_events:
                out.materialized.append((group, k))
                events += 1
                stale.discard(k)
        out.stale.extend((group, k) for k in sorted(newly_stale))
        kept = (stale | newly_stale) & waiting
        if kept:
            out.cursor_stale[group] = sorted(kept)

    out.runs = sorted(runs)[:max_runs]
    for table in roles.global_data:
        count = db.counts.get(table, 0)
        out.cursor_counts[table] = count
        if dagster.counts.get(table) != count:
            out.materialized.append((table, None))
    out.global_run = db.global_runnable and not dagster.global_in_flight
    return out
