"""Schemas: a namespace of tables in the database, and the decorator that binds table
classes to it (declaring the tables that do not exist yet)."""

from __future__ import annotations

import inspect
import sys

from . import catalog, naming
from .connection import Connection, conn as default_conn
from .declare import job_metadata_attributes, parse_definition
from .errors import DataJointError, DeclarationError, MissingTableError
from .settings import config


class Schema:
    """``schema = dj.Schema('lab')``; decorate table classes with ``@schema``."""

    def __init__(self, schema_name: str | None = None, context: dict | None = None, *,
                 connection: Connection | None = None, create_schema: bool = True, create_tables: bool = True,
                 add_objects: dict | None = None):
        self.database: str | None = None
        self.context = dict(context or {})
        if add_objects:
            self.context.update(add_objects)
        self._connection = connection
        self.create_tables = create_tables
        self._pending: list[tuple[type, dict]] = []
        self.classes: dict[str, type] = {}  # table name -> class
        if schema_name is not None:
            self.activate(schema_name, connection=connection, create_schema=create_schema,
                          create_tables=create_tables)

    def __repr__(self) -> str:
        return f"Schema({self.database!r})"

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = default_conn()
        return self._connection

    @property
    def is_activated(self) -> bool:
        return self.database is not None

    def activate(self, schema_name: str, *, connection: Connection | None = None, create_schema: bool = True,
                 create_tables: bool | None = None) -> "Schema":
        if not schema_name or not naming.re.match(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$", schema_name):
            raise DataJointError(f"Invalid schema name {schema_name!r}: use letters, digits, _ and -")
        if self.database is not None and self.database != schema_name:
            raise DataJointError(f"Schema is already activated as {self.database!r}")
        self.database = schema_name
        if connection is not None:
            self._connection = connection
        if create_tables is not None:
            self.create_tables = create_tables
        c = self.connection
        if not self.exists:
            if not create_schema:
                raise DataJointError(f"Schema {schema_name!r} does not exist and create_schema=False")
            with c.transaction() as tx:
                c.adapter.create_schema(tx, schema_name)
            c.invalidate()
        pending, self._pending = self._pending, []
        for cls, ctx in pending:
            self._process(cls, ctx)
        return self

    @property
    def exists(self) -> bool:
        with self.connection.reading() as tx:
            return self.database in self.connection.adapter.list_schemas(tx)

    # --- decorator ------------------------------------------------------------
    def __call__(self, cls: type | None = None, *, context: dict | None = None):
        caller = inspect.currentframe().f_back
        local_ctx = dict(caller.f_locals) if caller else {}
        if cls is None:
            return lambda c: self.__call__(c, context=context)
        ctx = {**local_ctx, **(context or {})}
        if self.database is None:
            self._pending.append((cls, ctx))
        else:
            self._process(cls, ctx)
        return cls

    def _context_for(self, cls: type, extra: dict) -> dict:
        module = sys.modules.get(cls.__module__)
        ctx = dict(vars(module)) if module else {}
        ctx.update(self.context)
        ctx.update(extra)
        ctx.update(self.classes_by_class_name())
        return ctx

    def classes_by_class_name(self) -> dict[str, type]:
        return {c.__name__: c for c in self.classes.values() if getattr(c, "master", None) is None}

    def _process(self, cls: type, extra: dict) -> None:
        from .user_tables import Lookup, Part, TIERS

        tier = next((t for t in ("Part", "Computed", "Imported", "Lookup", "Manual")
                     if issubclass(cls, TIERS[t])), None)
        if tier is None:
            raise DeclarationError(f"Class {cls.__name__} must subclass Manual, Lookup, Imported, Computed or Part")
        if tier == "Part":
            raise DeclarationError(f"Part table {cls.__name__} must be nested in its master class, not decorated")
        cls._table_name = naming.table_name(tier, cls.__name__)
        cls._schema = self
        ctx = self._context_for(cls, extra)
        cls.declaration_context = ctx  # alter() resolves foreign keys as the declaration did
        self._declare(cls, ctx)
        self._register(cls)
        for name, member in list(vars(cls).items()):
            if isinstance(member, type) and issubclass(member, Part) and member is not Part:
                member.master = cls
                member._table_name = naming.table_name("Part", member.__name__, master=cls._table_name)
                member._schema = self
                part_ctx = {**ctx, "master": cls, cls.__name__: cls}
                member.declaration_context = part_ctx
                self._declare(member, part_ctx)
                self._register(member)
        if issubclass(cls, Lookup):
            rows = list(cls().contents or ())  # a list, or a property computing one
            if rows:
                cls().insert(rows, skip_duplicates=True)

    def _register(self, cls: type) -> None:
        self.classes[cls._table_name] = cls
        self.connection.__dict__.setdefault("classes", {})[f"{self.database}.{cls._table_name}"] = cls

    def _declare(self, cls: type, ctx: dict) -> None:
        c = self.connection
        try:
            catalog.load(c, self.database, cls._table_name)
            return  # exists: the database is the source of truth
        except MissingTableError:
            pass
        if not self.create_tables:
            raise DataJointError(f"Table {self.database}.{cls._table_name} does not exist and create_tables=False")
        if not cls.definition or not cls.definition.strip():
            raise DeclarationError(f"Table class {cls.__name__} has no definition")
        tdef = parse_definition(cls.definition, ctx, f"{self.database}.{cls._table_name}")
        if cls.tier in ("Imported", "Computed"):
            if not any(fk.primary for fk in tdef.foreign_keys):
                raise DeclarationError(
                    f"{cls.tier} table {cls.__name__} needs a foreign key in its primary key: its keys come "
                    "from the key source, the join of its primary parents")
            tdef.attributes.extend(job_metadata_attributes())
        catalog.declare(c, self.database, cls._table_name, tdef)

    # --- introspection ---------------------------------------------------------
    def list_tables(self) -> list[str]:
        """Table names in dependency order (parents first)."""
        c = self.connection
        with c.reading() as tx:
            names = [n for n in c.adapter.list_tables(tx, self.database) if not n.startswith("~")]
        order = c.dependencies.topo_sort(f"{self.database}.{n}" for n in names)
        return [catalog.split_name(n)[1] for n in order]

    def __iter__(self):
        for name in self.list_tables():
            yield table_object(self.connection, f"{self.database}.{name}")

    def __getattr__(self, name: str):
        if name.startswith("_") or self.database is None:
            raise AttributeError(name)
        for t in self.classes.values():
            if t.__name__ == name and getattr(t, "master", None) is None:
                return t
        raise AttributeError(f"Schema {self.database!r} has no table class {name!r}")

    @property
    def jobs(self) -> list:
        """The jobs of this schema's auto-populated tables that have a jobs table."""
        c = self.connection
        with c.reading() as tx:
            names = set(c.adapter.list_tables(tx, self.database))
        from .autopopulate import AutoPopulate
        from .jobs import jobs_table_name

        return [cls().jobs for name, cls in self.classes.items()
                if issubclass(cls, AutoPopulate) and jobs_table_name(name) in names]

    def drop(self, prompt: bool | None = None, force: bool = False, safemode: bool | None = None) -> None:
        """Drop every table of the schema (and dependents in other schemas), then the schema.
        ``prompt`` (or ``safemode``) asks first, default ``config["safemode"]``;
        ``force=True`` never asks."""
        if prompt is not None:
            safemode = prompt
        from .cascade import confirm, drop_tables

        c = self.connection
        if not self.exists:
            return
        names = [f"{self.database}.{n}" for n in self.list_tables()]
        g = c.dependencies
        everything = set()
        for n in names:
            everything.update(g.descendants(n))
        safemode = config.safemode if safemode is None else safemode
        if safemode and not force and not confirm(f"Drop schema {self.database} and {len(everything)} tables?"):
            print(f"Drop cancelled: schema {self.database} was not dropped")
            return
        drop_tables(c, g.topo_sort(everything))
        with c.transaction() as tx:
            c.adapter.drop_schema(tx, self.database)
        c.invalidate()
        self.classes.clear()

    def make_classes(self, into: dict | None = None) -> dict[str, type]:
        """Rebuild a class for every table from the database alone."""
        classes = {}
        for name in self.list_tables():
            cls = table_class(self.connection, f"{self.database}.{name}", schema=self)
            if getattr(cls, "master", None) is None:
                classes[cls.__name__] = cls
        if into is not None:
            into.update(classes)
        return classes


def table_class(connection: Connection, full_name: str, schema: Schema | None = None) -> type:
    """The bound class of a table: a registered user class, or one made from the catalog."""
    registry = connection.__dict__.setdefault("classes", {})
    if full_name in registry:
        cls = registry[full_name]
        if schema is not None:  # a virtual schema over tables this process already declared
            schema.classes.setdefault(cls._table_name, cls)
        return cls
    from .user_tables import TIERS

    database, name = catalog.split_name(full_name)
    catalog.load(connection, database, name)  # raises MissingTableError
    tier = naming.tier_of(name)
    if schema is None:
        schema = Schema(connection=connection)
        schema.database = database
    attrs = {"definition": "", "_schema": schema, "_table_name": name, "__module__": __name__}
    cls = type(naming.class_name_of(name), (TIERS[tier],), attrs)
    registry[full_name] = cls
    schema.classes[name] = cls
    if tier == "Part":
        master = table_class(connection, f"{database}.{naming.master_of(name)}", schema)
        cls.master = master
        setattr(master, cls.__name__, cls)
    return cls


def table_object(connection: Connection, full_name: str):
    return table_class(connection, full_name)()


def virtual_schema(schema_name: str, *, connection: Connection | None = None, create_schema: bool = False,
                   add_objects: dict | None = None):
    """A module-like object with a class for every table of an existing schema."""
    import types

    schema = Schema(schema_name, connection=connection, create_schema=create_schema, create_tables=False)
    module = types.SimpleNamespace(schema=schema, **schema.make_classes())
    if add_objects:
        for k, v in add_objects.items():
            setattr(module, k, v)
    return module


VirtualModule = virtual_schema


def list_schemas(connection: Connection | None = None) -> list[str]:
    c = connection or default_conn()
    with c.reading() as tx:
        return c.adapter.list_schemas(tx)
