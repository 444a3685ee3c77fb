"""PostgreSQL cases: dj_dagster against datajoint 2.3.5, the raw driver (psycopg 3) and
pandas.read_sql, all in one process and one run against the same server.

Each library gets its own uniquely named schema (``djbench_<pid>_{ours,dj,raw}``), holding
the same tables with the same data (loaded untimed with COPY); all are dropped by
:meth:`PgSuite.close`.  Sizes scale with ``BENCH_SCALE`` (``--quick`` sets 0.1).

Configuration: ``BENCH_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``).
datajoint is configured from it through its environment variables (``DJ_HOST``, ``DJ_PORT``,
``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND=postgresql``, ``DJ_DATABASE_NAME``, ``DJ_USE_TLS=false``),
which must be set before datajoint is first imported: :func:`configure_peer_env` does that.
datajoint's PostgreSQL backend needs ``psycopg2`` (``pip install psycopg2-binary``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import sqlalchemy as sa

from dj_dagster.jobs import pid_alive

from .harness import Case

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MIB = 1024 * 1024


def pg_url() -> sa.URL:
    return sa.make_url(os.environ.get("BENCH_PG_URL", DEFAULT_URL))


def configure_peer_env() -> None:
    """Point datajoint at the same server (call before ``import datajoint``)."""
    url = pg_url()
    env = {
        "DJ_BACKEND": "postgresql",
        "DJ_HOST": url.host or "127.0.0.1",
        "DJ_PORT": str(url.port or 5432),
        "DJ_USER": url.username or "postgres",
        "DJ_PASS": url.password or "",
        "DJ_DATABASE_NAME": url.database or "postgres",
        "DJ_USE_TLS": "false",
        "DJ_IGNORE_CONFIG_FILE": "true",
        "DJ_LOG_LEVEL": "ERROR",
    }
    for k, v in env.items():
        os.environ.setdefault(k, v)


def scale() -> float:
    return float(os.environ.get("BENCH_SCALE", "1"))


def scaled(n: int, minimum: int = 10) -> int:
    return max(minimum, int(round(n * scale())))


DEFINITIONS = {
    "Item": """
    id : int32
    ---
    a : int32
    b : float64
    c : varchar(32)
    """,
    "Fetched": """
    id : int32
    ---
    a : int32
    b : float64
    c : varchar(32)
    """,
    "Grp": """
    g : int32
    ---
    label : varchar(16)
    """,
    "Member": """
    -> Grp
    m : int32
    ---
    v : float64
    """,
    "Src": """
    k : int32
    ---
    val : float64
    """,
    "Dst": """
    -> Src
    ---
    out : float64
    """,
    "Ca": """
    a_id : int32
    ---
    x : float64
    """,
    "Cb": """
    -> Ca
    b_id : int32
    ---
    y : float64
    """,
    "Array": """
    id : int32
    ---
    data : <blob>
    """,
    "Cc": """
    -> Cb
    c_id : int32
    ---
    z : float64
    """,
}

RAW_DDL = """
CREATE TABLE {s}.item (id integer PRIMARY KEY, a integer NOT NULL, b double precision NOT NULL,
                       c varchar(32) NOT NULL);
CREATE TABLE {s}.fetched (id integer PRIMARY KEY, a integer NOT NULL, b double precision NOT NULL,
                          c varchar(32) NOT NULL);
CREATE TABLE {s}.grp (g integer PRIMARY KEY, label varchar(16) NOT NULL);
CREATE TABLE {s}.member (g integer NOT NULL REFERENCES {s}.grp, m integer NOT NULL, v double precision NOT NULL,
                         PRIMARY KEY (g, m));
CREATE TABLE {s}.src (k integer PRIMARY KEY, val double precision NOT NULL);
CREATE TABLE {s}.dst (k integer PRIMARY KEY REFERENCES {s}.src, out double precision NOT NULL);
CREATE TABLE {s}.ca (a_id integer PRIMARY KEY, x double precision NOT NULL);
CREATE TABLE {s}.cb (a_id integer NOT NULL REFERENCES {s}.ca ON DELETE CASCADE, b_id integer NOT NULL,
                     y double precision NOT NULL, PRIMARY KEY (a_id, b_id));
CREATE TABLE {s}.arrayin (id integer PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE {s}.arrayout (id integer PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE {s}.cc (a_id integer NOT NULL, b_id integer NOT NULL, c_id integer NOT NULL,
                     z double precision NOT NULL, PRIMARY KEY (a_id, b_id, c_id),
                     FOREIGN KEY (a_id, b_id) REFERENCES {s}.cb ON DELETE CASCADE);
"""


def _declare(lib, schema) -> dict[str, type]:
    """The same table classes in either library (the decorators read this frame's locals)."""

    @schema
    class Item(lib.Manual):
        definition = DEFINITIONS["Item"]

    @schema
    class Fetched(lib.Manual):
        definition = DEFINITIONS["Fetched"]

    @schema
    class Grp(lib.Manual):
        definition = DEFINITIONS["Grp"]

    @schema
    class Member(lib.Manual):
        definition = DEFINITIONS["Member"]

    @schema
    class Src(lib.Manual):
        definition = DEFINITIONS["Src"]

    @schema
    class Dst(lib.Computed):
        definition = DEFINITIONS["Dst"]

        def make(self, key):
            val = (Src & key).fetch1("val")
            self.insert1({**key, "out": 2.0 * val})

    @schema
    class Ca(lib.Manual):
        definition = DEFINITIONS["Ca"]

    @schema
    class Cb(lib.Manual):
        definition = DEFINITIONS["Cb"]

    @schema
    class Cc(lib.Manual):
        definition = DEFINITIONS["Cc"]

    return dict(Item=Item, Fetched=Fetched, Grp=Grp, Member=Member, Src=Src, Dst=Dst, Ca=Ca, Cb=Cb, Cc=Cc)


class Side:
    """One library's schema: its table classes and the SQL names of its tables."""

    def __init__(self, label: str, schema_name: str, classes: dict[str, type] | None):
        self.label = label
        self.schema_name = schema_name
        self.classes = classes or {}

    def q(self, table: str) -> str:
        """Quoted SQL name of a table (``table`` is the SQL table name, e.g. ``__dst``)."""
        return f'"{self.schema_name}"."{table}"'

    def sql_name(self, cls_name: str) -> str:
        if not self.classes:  # raw schema: lower-case names
            return self.q(cls_name.lower())
        return self.q(self.classes[cls_name].table_name)


class PgSuite:
    def __init__(self):
        self.sizes = dict(
            rows=scaled(100_000),
            join=scaled(50_000, 100),
            keys=scaled(2_000),
            cascade_a=scaled(1_000),
            len_loops=50,
            arrays=scaled(200, 2),
        )
        self.sizes["groups"] = max(2, self.sizes["join"] // 50)
        tag = f"djbench_{os.getpid()}"
        self.names = {"ours": f"{tag}_ours", "dj": f"{tag}_dj", "raw": f"{tag}_raw"}
        self._ready = False
        self._failed: str | None = None
        self._loaded: set[str] = set()
        self.raw = None  # psycopg connection (autocommit)
        self.ours = self.dj = self.rawside = None
        self._ours_schema = self._dj_schema = None

    # --- lifecycle ---------------------------------------------------------------
    def _connect(self) -> None:
        import psycopg

        url = pg_url()
        self.raw = psycopg.connect(host=url.host or "127.0.0.1", port=url.port or 5432,
                                   user=url.username or "postgres", password=url.password or None,
                                   dbname=url.database or "postgres", autocommit=True)
        self._drop_stale()

    def _drop_stale(self) -> None:
        """Drop schemas left by killed runs (their pid is gone): ``djbench_<pid>_...`` and
        bench_dagster's ``djbench_<case>_<pid>_...`` (the pid is the first number)."""
        rows = self.raw.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'djbench\\_%'").fetchall()
        for (name,) in rows:
            pid = next((int(part) for part in name.split("_")[1:] if part.isdigit()), None)
            if pid is None:
                continue
            if pid != os.getpid() and not pid_alive(pid):
                self.raw.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def ensure(self) -> None:
        if self._ready:
            return
        if self._failed is not None:  # one failed set-up fails every case quickly, with its reason
            raise RuntimeError(f"PostgreSQL set-up failed earlier: {self._failed}")
        try:
            self._ensure()
        except Exception as exc:
            self._failed = f"{type(exc).__name__}: {exc}"
            raise

    def _ensure(self) -> None:
        self._connect()
        import dj_dagster as dj

        configure_peer_env()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import datajoint

        datajoint.config["safemode"] = False
        self.dj_lib, self.datajoint = dj, datajoint
        self.ours_conn = dj.Connection(pg_url())
        self._ours_schema = dj.Schema(self.names["ours"], connection=self.ours_conn)
        self.ours = Side("ours", self.names["ours"], _declare(dj, self._ours_schema))
        self._dj_schema = datajoint.Schema(self.names["dj"])
        self.dj = Side("dj", self.names["dj"], _declare(datajoint, self._dj_schema))
        self.raw.execute(f'CREATE SCHEMA "{self.names["raw"]}"')
        self.raw.execute(RAW_DDL.format(s=f'"{self.names["raw"]}"'))
        self.rawside = Side("raw", self.names["raw"], None)
        self.read_sql_engine = sa.create_engine(pg_url())
        self._ready = True
        self._warm_graph()

    def _warm_graph(self) -> None:
        """Build dj_dagster's foreign-key graph now, untimed.  It spans every schema on the
        server, so a concurrent process dropping its tables can make one build fail: retry."""
        from dj_dagster.errors import MissingTableError

        for attempt in range(5):
            try:
                self.ours_conn.dependencies.graph
                return
            except MissingTableError:
                self.ours_conn.invalidate()
                self.ours_conn.tables.clear()
        self.ours_conn.dependencies.graph

    def close(self) -> None:
        errors = []
        if self._ours_schema is not None:
            try:
                self._ours_schema.drop(force=True, safemode=False)
            except Exception as exc:
                errors.append(f"ours: {exc}")
        if self._dj_schema is not None:
            try:
                self._dj_schema.drop(prompt=False)
            except Exception as exc:
                errors.append(f"datajoint: {exc}")
        if self.raw is not None:
            if self.raw.info.transaction_status != 0:  # not idle: a failed explicit transaction
                self.raw.execute("ROLLBACK")
            for name in self.names.values():  # whatever is left, including the raw schema
                try:
                    self.raw.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                except Exception as exc:
                    errors.append(f"{name}: {exc}")
            self.raw.close()
        if self._ready:
            self.ours_conn.close()
            self.read_sql_engine.dispose()
        if errors:
            print("schema cleanup problems: " + "; ".join(errors))

    @property
    def sides(self) -> list[Side]:
        return [self.ours, self.dj, self.rawside]

    # --- data ------------------------------------------------------------------------
    def copy_rows(self, table_sql: str, columns: list[str], rows) -> None:
        with self.raw.cursor() as cur:
            with cur.copy(f"COPY {table_sql} ({', '.join(columns)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)

    def count(self, table_sql: str, where: str = "") -> int:
        return self.raw.execute(f"SELECT count(*) FROM {table_sql} {where}").fetchone()[0]

    def truncate(self, *tables_sql: str) -> None:
        existing = [t for t in tables_sql if self.raw.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        if existing:
            self.raw.execute(f"TRUNCATE {', '.join(existing)}")

    def item_rows(self) -> list[dict]:
        n = self.sizes["rows"]
        return [{"id": i, "a": (i * 7) % 1000, "b": i / 3.0, "c": f"item-{i:08d}"} for i in range(n)]

    def load(self, what: str) -> None:
        """Load a group's tables in every side (once)."""
        self.ensure()
        if what in self._loaded:
            return
        if what == "fetch":
            rows = [(r["id"], r["a"], r["b"], r["c"]) for r in self.item_rows()]
            for s in self.sides:
                self.copy_rows(s.sql_name("Fetched"), ["id", "a", "b", "c"], rows)
        elif what == "join":
            ng, nj = self.sizes["groups"], self.sizes["join"]
            per = nj // ng
            groups = [(g, f"group-{g}") for g in range(ng)]
            members = [(g, m, ((g * 31 + m * 17) % 1000) / 1000.0) for g in range(ng) for m in range(per)]
            for s in self.sides:
                self.copy_rows(s.sql_name("Grp"), ["g", "label"], groups)
                self.copy_rows(s.sql_name("Member"), ["g", "m", "v"], members)
        elif what == "populate":
            rows = [(k, k * 0.5) for k in range(self.sizes["keys"])]
            for s in self.sides:
                self.copy_rows(s.sql_name("Src"), ["k", "val"], rows)
        elif what == "arrays":
            self._load_arrays()
        elif what == "cascade":
            self.cascade_data = self._cascade_rows()
            for s in self.sides:
                self._cascade_fill(s, everything=True)
        self._loaded.add(what)

    def _load_arrays(self) -> None:
        """1 MiB float32 arrays; tables ArrayIn (insert cases) and ArrayOut (fetch cases, filled
        here) for ours only: datajoint's zlib level 6 over 200 MiB would take minutes."""
        dj = self.dj_lib

        @self._ours_schema
        class ArrayIn(dj.Manual):
            definition = DEFINITIONS["Array"]

        @self._ours_schema
        class ArrayOut(dj.Manual):
            definition = DEFINITIONS["Array"]

        self.ours.classes.update(ArrayIn=ArrayIn, ArrayOut=ArrayOut)
        rng = np.random.default_rng(0)
        self.arrays = [rng.standard_normal(MIB // 4, dtype=np.float32) for _ in range(self.sizes["arrays"])]
        ArrayOut.insert(self.array_rows())
        self.raw_array_insert("ArrayOut")

    def array_rows(self) -> list[dict]:
        return [{"id": i, "data": a} for i, a in enumerate(self.arrays)]

    def raw_array_insert(self, table: str) -> None:
        """The raw driver's way: one transaction, executemany, bytea as a binary parameter."""
        sql = f"INSERT INTO {self.rawside.sql_name(table)} (id, data) VALUES (%s, %b)"
        with self.raw.transaction(), self.raw.cursor() as cur:
            cur.executemany(sql, [(i, a.tobytes()) for i, a in enumerate(self.arrays)])

    def raw_array_fetch(self) -> list[dict]:
        """Binary results (bytea arrives as bytes, no hex decoding), one array view per row."""
        with self.raw.cursor(binary=True) as cur:
            cur.execute(f"SELECT id, data FROM {self.rawside.sql_name('ArrayOut')}")
            return [{"id": i, "data": np.frombuffer(d, dtype=np.float32)} for i, d in cur]

    # cascade: A has 2*na rows, each with 10 B rows, each with 4 C rows; the delete removes
    # the first half (a_id < na): na * (1 + 10 + 40) rows, ~51,000 at full scale.
    def _cascade_rows(self):
        na = self.sizes["cascade_a"]
        a = [(i, i * 0.25) for i in range(2 * na)]
        b = [(i, j, i + j * 0.5) for i in range(2 * na) for j in range(10)]
        c = [(i, j, k, i + j + k * 0.125) for i in range(2 * na) for j in range(10) for k in range(4)]
        return a, b, c

    def _cascade_fill(self, side: Side, everything: bool = False) -> None:
        na = self.sizes["cascade_a"]
        a, b, c = self.cascade_data
        keep = (lambda r: True) if everything else (lambda r: r[0] < na)
        self.copy_rows(side.sql_name("Ca"), ["a_id", "x"], (r for r in a if keep(r)))
        self.copy_rows(side.sql_name("Cb"), ["a_id", "b_id", "y"], (r for r in b if keep(r)))
        self.copy_rows(side.sql_name("Cc"), ["a_id", "b_id", "c_id", "z"], (r for r in c if keep(r)))

    def cascade_restore(self) -> None:
        na = self.sizes["cascade_a"]
        for s in self.sides:
            n = self.count(s.sql_name("Ca"))
            if n == na:  # the first half was deleted: put it back
                self._cascade_fill(s)
            elif n != 2 * na:
                raise AssertionError(f"{s.label}: cascade table Ca holds {n} rows, expected {na} or {2 * na}")

    def cascade_check(self) -> None:
        na = self.sizes["cascade_a"]
        for s in self.sides:
            counts = [self.count(s.sql_name(t)) for t in ("Ca", "Cb", "Cc")]
            if counts not in ([na, 10 * na, 40 * na], [2 * na, 20 * na, 80 * na]):
                raise AssertionError(f"{s.label}: unexpected cascade counts {counts}")

    def _side_tables(self, side: str) -> list[Side]:
        """The schemas a side-aware setup resets: ours, or every peer."""
        return [self.ours] if side == "ours" else [self.dj, self.rawside]

    # --- cases -----------------------------------------------------------------------
    def cases(self) -> list[Case]:
        sz = self.sizes
        out: list[Case] = []
        C = self._classes

        # insert -------------------------------------------------------------------------
        def prep_insert():
            self.ensure()
            self.insert_dicts = self.item_rows()
            import pandas as pd

            frame = pd.DataFrame(self.insert_dicts)
            self.insert_frame = frame.astype({"id": "int32", "a": "int32", "b": "float64"})

        def insert_setup(side):
            self.truncate(*(s.sql_name("Item") for s in self._side_tables(side)))

        def insert_check(peer_side):
            def check(_o, _p):
                for s in (self.ours, peer_side()):
                    n = self.count(s.sql_name("Item"))
                    if n != sz["rows"]:
                        raise AssertionError(f"{s.label}: Item has {n} rows after insert, expected {sz['rows']}")
            return check

        def raw_copy():
            self.copy_rows(self.rawside.sql_name("Item"), ["id", "a", "b", "c"],
                           ((r["id"], r["a"], r["b"], r["c"]) for r in self.insert_dicts))

        ins_dicts = lambda: C("ours", "Item").insert(self.insert_dicts)  # noqa: E731
        ins_frame = lambda: C("ours", "Item").insert(self.insert_frame)  # noqa: E731
        common = dict(setup=insert_setup, prepare=prep_insert, units=sz["rows"], repeats=2)
        to_dj, to_raw = insert_check(lambda: self.dj), insert_check(lambda: self.rawside)
        label = f"{sz['rows']:,}"
        out += [
            Case(f"insert {label} rows as dicts", ins_dicts, lambda: C("dj", "Item").insert(self.insert_dicts),
                 target=5, target_text=">= 5x", peer_repeats=2, check=to_dj, **common),
            Case(f"insert {label} rows as dicts", ins_dicts, raw_copy, peer_name="psycopg COPY", check=to_raw,
                 **common),
            Case(f"insert {label} rows as DataFrame", ins_frame,
                 lambda: C("dj", "Item").insert(self.insert_frame), target=5, target_text=">= 5x",
                 peer_repeats=2, check=to_dj, **common),
        ]

        # fetch --------------------------------------------------------------------------
        prep_fetch = lambda: self.load("fetch")  # noqa: E731
        fetched = lambda side: C(side, "Fetched")  # noqa: E731

        def check_len(expected):
            def check(o, p):
                lo, lp = len(o), len(p)
                if lo != expected or lp != expected:
                    raise AssertionError(f"row counts: ours {lo}, peer {lp}, expected {expected}")
            return check

        def read_sql():
            import pandas as pd

            return pd.read_sql(f"SELECT id, a, b, c FROM {self.rawside.sql_name('Fetched')}", self.read_sql_engine,
                               index_col="id")

        def raw_dicts(sql):
            from psycopg.rows import dict_row

            def run():
                with self.raw.cursor(row_factory=dict_row) as cur:
                    cur.execute(sql)
                    return cur.fetchall()
            return run

        def raw_arrays():
            with self.raw.cursor() as cur:
                cur.execute(f"SELECT id, a, b, c FROM {self.rawside.sql_name('Fetched')}")
                rows = cur.fetchall()
            dtype = [("id", "i4"), ("a", "i4"), ("b", "f8"), ("c", "O")]
            return np.array(rows, dtype=dtype)

        fcommon = dict(prepare=prep_fetch, units=sz["rows"], check=check_len(sz["rows"]))
        to_pandas = lambda: fetched("ours").to_pandas()  # noqa: E731
        to_dicts = lambda: fetched("ours").to_dicts()  # noqa: E731
        to_arrays = lambda: fetched("ours").to_arrays()  # noqa: E731
        out += [
            Case(f"fetch {label} rows to_pandas", to_pandas, lambda: fetched("dj").to_pandas(), target=5,
                 target_text=">= 5x", **fcommon),
            Case(f"fetch {label} rows to_pandas", to_pandas, read_sql, peer_name="pandas.read_sql", target=0.6,
                 target_text=">= 0.6x", **fcommon),
            Case(f"fetch {label} rows to_dicts", to_dicts, lambda: fetched("dj").to_dicts(), target=5,
                 target_text=">= 5x", **fcommon),
            Case(f"fetch {label} rows to_dicts", to_dicts,
                 raw_dicts(f'SELECT id, a, b, c FROM "{self.names["raw"]}".fetched'), peer_name="psycopg dict_row",
                 **fcommon),
            Case(f"fetch {label} rows to_arrays", to_arrays, lambda: fetched("dj").to_arrays(), target=5,
                 target_text=">= 5x", **fcommon),
            Case(f"fetch {label} rows to_arrays", to_arrays, raw_arrays, peer_name="psycopg + numpy", **fcommon),
        ]

        # join, aggregation, len ------------------------------------------------------------
        prep_join = lambda: self.load("join")  # noqa: E731
        r = f'"{self.names["raw"]}"'
        join_sql = f"SELECT g.g, m.m, g.label, m.v FROM {r}.grp g JOIN {r}.member m ON m.g = g.g"
        aggr_sql = (f"SELECT g.g, g.label, count(m.g) AS n, avg(m.v) AS mean_v FROM {r}.grp g "
                    f"LEFT JOIN {r}.member m ON m.g = g.g GROUP BY g.g, g.label")
        join = lambda side: lambda: (C(side, "Grp") * C(side, "Member")).to_dicts()  # noqa: E731
        aggr = lambda side: lambda: C(side, "Grp").aggr(C(side, "Member"), n="count(*)",  # noqa: E731
                                                        mean_v="avg(v)").to_dicts()
        ours_join, ours_aggr = join("ours"), aggr("ours")
        jl = f"{sz['join']:,}"
        jcommon = dict(prepare=prep_join)
        within15 = dict(target=1 / 1.5, target_text="within 1.5x")
        out += [
            Case(f"join {jl} rows to_dicts", ours_join, raw_dicts(join_sql), peer_name="psycopg dict_row",
                 units=sz["join"], check=check_len(sz["join"]), **within15, **jcommon),
            Case(f"join {jl} rows to_dicts", ours_join, join("dj"), units=sz["join"], check=check_len(sz["join"]),
                 **jcommon),
            Case(f"aggr count/avg over {jl} rows to_dicts", ours_aggr, raw_dicts(aggr_sql),
                 peer_name="psycopg dict_row", units=sz["groups"], check=check_len(sz["groups"]), **within15,
                 **jcommon),
            Case(f"aggr count/avg over {jl} rows to_dicts", ours_aggr, aggr("dj"), units=sz["groups"],
                 check=check_len(sz["groups"]), **jcommon),
        ]

        loops = sz["len_loops"]

        def loop(fn):
            def run():
                return [fn() for _ in range(loops)][-1]
            return run

        def raw_count(sql):
            return loop(lambda: self.raw.execute(sql).fetchone()[0])

        def prep_len():
            self.load("fetch")
            self.load("join")

        def same_count(expected):
            def check(o, p):
                if o != expected or p != expected:
                    raise AssertionError(f"counts: ours {o}, peer {p}, expected {expected}")
            return check

        len_fetched = loop(lambda: len(fetched("ours")))
        len_join = loop(lambda: len(C("ours", "Grp") * C("ours", "Member")))
        within13 = dict(target=1 / 1.3, target_text="within 1.3x")
        ng = sz["groups"]
        lcommon = dict(prepare=prep_len, units=(loops, "calls"))
        out += [
            Case(f"len() of {label} rows x{loops}", len_fetched,
                 raw_count(f"SELECT count(*) FROM {r}.fetched"), peer_name="psycopg count(*)",
                 check=same_count(sz["rows"]), **within13, **lcommon),
            Case(f"len() of {label} rows x{loops}", len_fetched, loop(lambda: len(fetched("dj")())),
                 check=same_count(sz["rows"]), **lcommon),
            Case(f"len() of {ng:,}-row table x{loops}", loop(lambda: len(C("ours", "Grp"))),
                 raw_count(f"SELECT count(*) FROM {r}.grp"), peer_name="psycopg count(*)",
                 check=same_count(ng), **within13, **lcommon),
            Case(f"len() of {jl}-row join x{loops}", len_join,
                 raw_count(f"SELECT count(*) FROM {r}.grp g JOIN {r}.member m ON m.g = g.g"),
                 peer_name="psycopg count(*)", check=same_count(sz["join"]), **within13, **lcommon),
        ]

        # populate ----------------------------------------------------------------------------
        prep_pop = lambda: self.load("populate")  # noqa: E731

        def pop_setup(side):
            names = []
            for s in self._side_tables(side):
                names.append(s.sql_name("Dst"))
                names.append(s.q("~~dst"))
            self.truncate(*names)

        def raw_populate():
            rs = f'"{self.names["raw"]}"'
            keys = [k for (k,) in self.raw.execute(
                f"SELECT k FROM {rs}.src EXCEPT SELECT k FROM {rs}.dst ORDER BY 1").fetchall()]
            n = 0
            for k in keys:
                with self.raw.transaction():
                    val = self.raw.execute(f"SELECT val FROM {rs}.src WHERE k = %s", (k,)).fetchone()[0]
                    self.raw.execute(f"INSERT INTO {rs}.dst (k, out) VALUES (%s, %s)", (k, 2.0 * val))
                n += 1
            return {"success_count": n}

        def pop_check(peer_side):
            def check(o, p):
                n = sz["keys"]
                got = [o.get("success_count"), p.get("success_count")]
                if got != [n, n]:
                    raise AssertionError(f"populate success counts (ours, peer) {got}, expected {n}")
                for s in (self.ours, peer_side()):
                    rows = self.count(s.sql_name("Dst"))
                    if rows != n:
                        raise AssertionError(f"{s.label}: Dst has {rows} rows, expected {n}")
            return check

        pc_dj, pc_raw = pop_check(lambda: self.dj), pop_check(lambda: self.rawside)
        kl = f"{sz['keys']:,}"
        pcommon = dict(prepare=prep_pop, setup=pop_setup, units=(sz["keys"], "keys"), repeats=3)
        pop = lambda side, **kw: lambda: C(side, "Dst").populate(**kw)  # noqa: E731
        ours_pop, ours_pop_res = pop("ours"), pop("ours", reserve_jobs=True)
        out += [
            Case(f"populate {kl} keys", ours_pop, raw_populate, peer_name="psycopg txn per key",
                 target=1 / 1.5, target_text="<= 1.5x raw", check=pc_raw, **pcommon),
            Case(f"populate {kl} keys", ours_pop, pop("dj"), target=2, target_text="<= 0.5x dj",
                 peer_repeats=2, check=pc_dj, **pcommon),
            Case(f"populate {kl} keys reserve_jobs", ours_pop_res, pop("dj", reserve_jobs=True), target=2,
                 target_text="<= 0.5x dj", peer_repeats=2, check=pc_dj, **pcommon),
            Case(f"populate {kl} keys reserve_jobs", ours_pop_res, raw_populate, peer_name="psycopg txn per key",
                 check=pc_raw, **pcommon),
        ]

        # arrays through <blob> (issue #5: "end-to-end insert and fetch of array rows at least 0.5x
        # the raw driver"); the peer stores the same array bytes in a bytea column --------------
        narr = sz["arrays"]
        al = f"{narr} rows of 1 MiB float32 arrays <blob>"
        prep_arrays = lambda: self.load("arrays")  # noqa: E731

        def arrays_setup(side):
            self.truncate((self.ours if side == "ours" else self.rawside).sql_name("ArrayIn"))

        def arrays_inserted(_o, _p):
            counts = [self.count(s.sql_name("ArrayIn")) for s in (self.ours, self.rawside)]
            if counts != [narr, narr]:
                raise AssertionError(f"ArrayIn rows (ours, raw) {counts}, expected {narr}")

        def arrays_fetched(o, p):
            ours_rows, peer_rows = ({r["id"]: r["data"] for r in rows} for rows in (o, p))
            if len(ours_rows) != narr or len(peer_rows) != narr or not all(
                    np.array_equal(ours_rows[i], peer_rows[i]) for i in (0, narr - 1)):
                raise AssertionError("fetched arrays differ between ours and the raw driver")

        acommon = dict(prepare=prep_arrays, units=(narr, "MiB"), peer_name="psycopg binary bytea", target=0.5,
                       target_text=">= 0.5x raw")
        out += [
            Case(f"insert {al}", lambda: C("ours", "ArrayIn").insert(self.array_rows()),
                 lambda: self.raw_array_insert("ArrayIn"), setup=arrays_setup, check=arrays_inserted, **acommon),
            Case(f"fetch {al}", lambda: C("ours", "ArrayOut").to_dicts(), self.raw_array_fetch,
                 check=arrays_fetched, **acommon),
        ]

        # cascading delete -------------------------------------------------------------------
        na = sz["cascade_a"]
        cl = f"{na * 51:,}"
        cond = f"a_id < {na}"
        prep_cascade = lambda: self.load("cascade")  # noqa: E731

        def raw_delete():
            return self.raw.execute(f"DELETE FROM {r}.ca WHERE {cond}").rowcount

        def cascade_check(o, p):
            if o != na or p != na:
                raise AssertionError(f"rows deleted from Ca: ours {o}, peer {p}, expected {na}")
            self.cascade_check()

        ccommon = dict(prepare=prep_cascade, setup=self.cascade_restore, units=na * 51, check=cascade_check)
        ours_del = lambda: (C("ours", "Ca") & cond).delete(safemode=False)  # noqa: E731
        out += [
            Case(f"cascade delete {cl} rows over 3 tables", ours_del, raw_delete,
                 peer_name="DELETE ... ON DELETE CASCADE", target=1 / 1.3, target_text="within 1.3x", **ccommon),
            Case(f"cascade delete {cl} rows over 3 tables", ours_del,
                 lambda: (C("dj", "Ca") & cond).delete(prompt=False), **ccommon),
        ]

        # restriction by a large key set (issue 21) ------------------------------------------
        # ours binds the keys as one array; datajoint 2.3.5 writes one OR-term per key: at
        # 100,000 keys PostgreSQL was still busy after 11 minutes (and ignored cancellation),
        # so datajoint is timed at 5,000 keys
        def key_cases(nk, peer, peer_name, **extra):
            keys = [{"id": i} for i in range(0, 2 * nk, 2)]  # every other id: half of them exist
            hits = len([i for i in range(0, 2 * nk, 2) if i < sz["rows"]])
            return Case(f"len(T & {nk:,} keys)", lambda: len(fetched("ours") & keys), peer(keys),
                        peer_name=peer_name, prepare=lambda: self.load("fetch"), units=(nk, "keys"),
                        check=same_count(hits), repeats=3, **extra)

        def any_array(keys):
            ids = [k["id"] for k in keys]
            return lambda: self.raw.execute(f"SELECT count(*) FROM {r}.fetched WHERE id = ANY(%s)",
                                            (ids,)).fetchone()[0]

        out += [
            key_cases(scaled(100_000), any_array, "psycopg = ANY(array)"),
            key_cases(scaled(5_000), lambda keys: lambda: len(fetched("dj") & keys), "datajoint", peer_repeats=1),
        ]
        return out

    def _classes(self, side: str, name: str):
        return (self.ours if side == "ours" else self.dj).classes[name]


def describe_versions() -> list[str]:
    import importlib.metadata as md

    out = []
    for pkg in ("dj_dagster", "datajoint", "sqlalchemy", "psycopg", "psycopg2-binary", "pandas", "numpy"):
        try:
            out.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    return out


__all__ = ["PgSuite", "configure_peer_env", "describe_versions"]
