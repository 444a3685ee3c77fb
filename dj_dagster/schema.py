"""Schemas: a namespace of tables in the database, and the decorator that binds table
classes to it (declaring the tables that do not exist yet)."""

from __future__ import annotations

import inspect
import re
import sys
import types
import warnings
from collections import ChainMap
from typing import Mapping

from . import catalog, naming
from .connection import Connection, conn as default_conn
from .declare import job_metadata_attributes, parse_definition
from .provenance import prov_attribute
from .errors import DataJointError, DeclarationError, MissingTableError
from .settings import config

_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")  # matched in full: no trailing newline


class Schema:
    """``schema = dj.Schema('lab')``; decorate table classes with ``@schema``."""

    def __init__(self, schema_name: str | None = None, context: dict | None = None, *,
                 connection: Connection | None = None, create_schema: bool = True, create_tables: bool = True,
                 add_objects: dict | None = None):
        self.database: str | None = None
        self.context = context if context is not None else {}  # names foreign keys resolve in, first
        self.add_objects = dict(add_objects or {})
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

    def is_activated(self) -> bool:
        """Whether the schema is bound to a database schema (datajoint's method)."""
        return self.database is not None

    def activate(self, schema_name: str | None = None, *, connection: Connection | None = None,
                 create_schema: bool | None = None, create_tables: bool | None = None,
                 add_objects: dict | None = None) -> "Schema":
        """Bind the schema to the database schema ``schema_name`` (created unless
        ``create_schema=False``) and declare the tables decorated so far. Their foreign
        keys resolve in their module's namespace as it is now (a module may set names in
        the function that activates it), then ``context`` and ``add_objects``.
        ``create_tables=False`` refuses to declare missing tables. Activating again
        under the same name does nothing new."""
        if schema_name is None:
            if self.database is None:
                raise DataJointError("Schema.activate() needs a schema name")
            schema_name = self.database
        if add_objects:
            self.add_objects.update(add_objects)
        create_schema = True if create_schema is None else create_schema
        if not isinstance(schema_name, str) or not _SCHEMA_NAME.fullmatch(schema_name):
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
            try:
                with c.transaction() as tx:
                    c.adapter.create_schema(tx, schema_name)
            except Exception as exc:  # noqa: BLE001 - the driver's error, as ours (AccessError: no privilege)
                self.database = None
                raise _driver_error(exc, f"Cannot create schema {schema_name!r}") from None
            c.invalidate()
        pending, self._pending = self._pending, []
        for cls, ctx in pending:
            self._process(cls, ctx)
        return self

    @property
    def exists(self) -> bool:
        """Whether the database schema exists (system schemas included)."""
        if self.database is None:
            raise DataJointError("Schema is not activated: it names no database schema yet")
        with self.connection.reading() as tx:
            return self.connection.adapter.schema_exists(tx, self.database)

    # --- decorator ------------------------------------------------------------
    def __call__(self, cls: type | None = None, *, context: dict | None = None):
        caller = inspect.currentframe().f_back
        if cls is None:
            return lambda c: self.__call__(c, context=context)
        # a module's namespace is kept live (names set later, before activation, count);
        # a function's locals are copied as they are now
        local_ctx = {} if caller is None else caller.f_locals if caller.f_locals is caller.f_globals \
            else dict(caller.f_locals)
        ctx = ChainMap(context, local_ctx) if context else local_ctx
        if self.database is None:
            self._pending.append((cls, ctx))
        else:
            self._process(cls, ctx)
        return cls

    def _context_for(self, cls: type, extra: Mapping) -> ChainMap:
        """The names a declaration resolves, first found wins: the schema's classes, the
        decorator's context (or its caller's namespace), ``add_objects``, the schema's
        context, the class's module. Module namespaces are read live."""
        module = sys.modules.get(cls.__module__)
        return ChainMap(self.classes_by_class_name(), extra, self.add_objects, self.context or {},
                        vars(module) if module else {})

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
        cls._table_name = naming.table_name(tier, _class_name(cls))
        cls._schema = self
        _document(cls)
        ctx = ChainMap({"self": cls, cls.__name__: cls}, self._context_for(cls, extra))
        cls.declaration_context = ctx  # alter() resolves foreign keys as the declaration did
        self._declare(cls, ctx)
        self._register(cls)
        for member in _nested_parts(cls, Part):
            member.master = cls
            member._table_name = naming.table_name("Part", _class_name(member), master=cls._table_name)
            _document(member)
            member._schema = self
            part_ctx = ChainMap({"master": cls, "self": member}, ctx)
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
            _check_auto_populated_key(cls, tdef)
            if config.jobs.add_job_metadata:
                tdef.attributes.extend(job_metadata_attributes())
        elif cls.tier == "Manual" and config.provenance.capture:  # Entry tables record where rows came from
            tdef.attributes.append(prov_attribute())
        catalog.declare(c, self.database, cls._table_name, tdef)

    # --- introspection ---------------------------------------------------------
    @property
    def lineage_table_exists(self) -> bool:
        """Whether this schema has a ``~lineage`` table (see :mod:`dj_dagster.lineage`)."""
        from .lineage import lineage_table_exists

        return lineage_table_exists(self.connection, self.database)

    def rebuild_lineage(self) -> None:
        """Rewrite this schema's ``~lineage`` rows from its tables' foreign keys (for
        schemas whose rows are missing or stale)."""
        from .lineage import rebuild_schema_lineage

        rebuild_schema_lineage(self.connection, self.database)

    def list_tables(self) -> list[str]:
        """Table names in dependency order (parents first)."""
        c = self.connection
        with c.reading() as tx:
            names = [n for n in c.adapter.list_tables(tx, self.database) if not n.startswith("~")]
        order = c.dependencies.topo_sort(f"{self.database}.{n}" for n in names)
        return [catalog.split_name(n)[1] for n in order]

    def __iter__(self):
        """The schema's tables as FreeTable objects, parents first."""
        from .table import FreeTable

        for name in self.list_tables():
            yield FreeTable(self.connection, f"{self.database}.{name}")

    def _find_table_name(self, name: str) -> str | None:
        """The table named ``name`` in the database: a table name (``experiment``,
        ``#lookup``) or a class name (``Experiment``), tier prefix or not."""
        tables = self.list_tables()
        if name in tables:
            return name
        if not isinstance(name, str) or not name[:1].isalpha():
            return None
        try:
            snake = naming.to_snake(name) if name[:1].isupper() else name
        except DeclarationError:
            return None
        return next((t for t in tables if t.lstrip("_#") == snake and naming.tier_of(t) != "Part"), None)

    def get_table(self, name: str):
        """The table called ``name`` (a table name or a class name) as a FreeTable;
        DataJointError if the schema has no such table."""
        from .table import FreeTable

        found = self._find_table_name(name)
        if found is None:
            raise DataJointError(f"Table {name!r} does not exist in schema {self.database!r}")
        return FreeTable(self.connection, f"{self.database}.{found}")

    def __getitem__(self, name: str):
        """``schema["Experiment"]``: :meth:`get_table`."""
        return self.get_table(name)

    def __contains__(self, name: object) -> bool:
        """Whether the schema has a table called ``name`` (a table name or a class name)."""
        return isinstance(name, str) and self._find_table_name(name) is not None

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
        try:
            with c.transaction() as tx:
                c.adapter.drop_schema(tx, self.database)
        except Exception as exc:  # noqa: BLE001 - the driver's error, as ours (AccessError: no privilege)
            raise _driver_error(exc, f"Cannot drop schema {self.database!r}") from None
        c.invalidate()
        self.classes.clear()

    def make_classes(self, into: dict | None = None) -> dict[str, type]:
        """Make a class for every table of the schema (from the database alone, where this
        process has none) and put those missing into ``into``: a dict, by default the
        schema's context or, without one, the caller's namespace. Returns them all."""
        if into is None:
            into = self.context if self.context else inspect.currentframe().f_back.f_locals
        classes = {}
        for name in self.list_tables():
            cls = table_class(self.connection, f"{self.database}.{name}", schema=self)
            if getattr(cls, "master", None) is None:
                classes[cls.__name__] = cls
        for name, cls in classes.items():
            into.setdefault(name, cls)
        return classes


def _class_name(cls: type) -> str:
    """The class name a table name is made from: underscores are dropped, with a warning
    (CamelCase is the convention; datajoint declares such classes the same way)."""
    name = cls.__name__
    if "_" in name:
        warnings.warn(f"Table class name {name!r} contains underscores; CamelCase names without underscores "
                      "are recommended", UserWarning, stacklevel=5)
        name = name.replace("_", "")
    return name


def _document(cls: type) -> None:
    """Add the table's definition to the class docstring (``help(Table)`` shows it)."""
    if isinstance(cls.definition, str) and cls.definition not in (cls.__doc__ or ""):
        cls.__doc__ = (cls.__doc__ or "") + "\nTable definition:\n\n" + cls.definition


def _nested_parts(cls: type, part_class: type) -> list[type]:
    """The Part classes nested in ``cls`` or inherited from its bases, in declaration
    order (a base's parts first)."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        names.update(dict.fromkeys(vars(klass)))
    members = [getattr(cls, n, None) for n in names if n[:1].isupper()]
    return [m for m in dict.fromkeys(members)
            if isinstance(m, type) and issubclass(m, part_class) and m is not part_class]


def _driver_error(exc: Exception, what: str) -> Exception:
    """A database error as our error class (AccessError for a missing privilege), with ``what`` first."""
    from .errors import translate_driver_error

    err = translate_driver_error(exc)
    if not isinstance(err, DataJointError):
        return exc
    return type(err)(f"{what}: {getattr(exc, 'orig', exc)}")


def _check_auto_populated_key(cls: type, tdef) -> None:
    """An Imported or Computed table's primary key should come from its primary foreign
    keys (make() is called once per key of the key source). datajoint 2.3.5 declares
    such tables all the same (its check never runs), so they are declared here too, with
    a warning unless ``config.jobs.allow_new_pk_fields_in_computed_tables`` says they
    are meant."""
    if config.jobs.allow_new_pk_fields_in_computed_tables:
        return
    inherited = {child for fk in tdef.foreign_keys if fk.primary for child in fk.attr_map}
    own = [a.name for a in tdef.attributes if a.in_key and not a.hidden and a.name not in inherited]
    if own or not inherited:
        what = f"has primary-key attribute(s) of its own: {', '.join(own)}" if own else \
            "has no foreign key in its primary key"
        warnings.warn(
            f"{cls.tier} table {cls.__name__} {what}. Its keys should come from the key source, the join of its "
            "primary parents (make() is called once per key): store several rows per key in a Part table, "
            "or set dj.config.jobs.allow_new_pk_fields_in_computed_tables = True", stacklevel=5)


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


class VirtualModule(types.ModuleType):
    """``dj.VirtualModule(module_name, schema_name)``: a module with a class for every
    table of an existing schema (made from the database alone) and the schema as
    ``.schema``. ``create_schema`` creates a missing schema; ``create_tables`` lets the
    schema declare new tables; ``add_objects`` (a dict) adds names to the module."""

    def __init__(self, module_name: str, schema_name: str, *, create_schema: bool = False,
                 create_tables: bool = False, connection: Connection | None = None,
                 add_objects: dict | None = None):
        super().__init__(module_name)
        schema = Schema(schema_name, connection=connection, create_schema=create_schema,
                        create_tables=create_tables)
        if add_objects:
            self.__dict__.update(add_objects)
        self.__dict__["schema"] = schema
        schema.make_classes(into=self.__dict__)


def virtual_schema(schema_name: str, *, connection: Connection | None = None, create_schema: bool = False,
                   create_tables: bool = False, add_objects: dict | None = None) -> VirtualModule:
    """A module with a class for every table of an existing schema: ``VirtualModule``
    named after the schema."""
    return VirtualModule(schema_name, schema_name, create_schema=create_schema, create_tables=create_tables,
                         connection=connection, add_objects=add_objects)


def list_schemas(connection: Connection | None = None) -> list[str]:
    c = connection or default_conn()
    with c.reading() as tx:
        return c.adapter.list_schemas(tx)
