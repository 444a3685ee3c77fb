"""The translator decides how each table looks in Dagster. Subclass it and override
any ``get_*`` method, as with dagster-dbt's DagsterDbtTranslator."""

from __future__ import annotations

import hashlib
import inspect
import linecache
import re

import dagster as dg

from .. import naming

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text)


def bare_name(table_name: str) -> str:
    """``__score__detail`` -> ``score__detail``: asset names drop the tier prefix."""
    return table_name.lstrip("_#")


_DAGSTER_TYPES = {"int8": "int", "int16": "int", "int32": "int", "int64": "int", "uint8": "int",
                  "uint16": "int", "uint32": "int", "uint64": "int", "float32": "float", "float64": "float",
                  "bool": "bool", "date": "date", "datetime": "datetime"}


class DataJointTranslator:
    def get_asset_key(self, table) -> dg.AssetKey:
        return dg.AssetKey([safe_name(table.database), bare_name(table.table_name)])

    def get_group_name(self, table) -> str:
        return safe_name(table.database)

    def get_description(self, table) -> str:
        comment = table._info.comment
        return f"{comment}\n\n```\n{table.describe()}```" if comment else f"```\n{table.describe()}```"

    def get_kinds(self, table) -> set[str]:
        return {"datajoint", table._connection.backend}

    def get_tags(self, table) -> dict[str, str]:
        return {"dj/tier": table.tier.lower()}

    def get_owners(self, table) -> list[str]:
        return []

    def get_code_version(self, table) -> str:
        text = table.describe()
        make = getattr(table, "code_version", "")
        return hashlib.sha1(f"{text}\n{make}".encode()).hexdigest()[:16]

    def get_automation_condition(self, table) -> dg.AutomationCondition | None:
        return None

    def get_column_schema(self, table) -> dg.TableSchema:
        heading = table.heading
        columns = []
        for attr in heading:
            if attr.hidden:
                continue
            columns.append(dg.TableColumn(
                name=attr.name, type=attr.type.text, description=attr.comment or None,
                constraints=dg.TableColumnConstraints(nullable=attr.nullable, unique=False,
                                                      other=["primary key"] if attr.in_key else [])))
        return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(
            other=[f"primary key ({', '.join(heading.primary_key)})"]))

    def get_code_references(self, table) -> dg.CodeReferencesMetadataValue | None:
        """Where the table class is written: the line of its ``class`` statement (or of its
        make), found without parsing the file. None for classes made from the catalog."""
        cls = type(table)
        if cls.__module__.startswith("dj_dagster."):
            return None
        try:
            path = inspect.getsourcefile(cls)
        except TypeError:
            return None
        if not path:
            return None
        pattern = re.compile(rf"^\s*class\s+{re.escape(cls.__name__)}\b")
        line = next((i + 1 for i, text in enumerate(linecache.getlines(path)) if pattern.match(text)), None)
        make = vars(cls).get("make")
        if line is None and make is not None and hasattr(make, "__code__"):
            line = make.__code__.co_firstlineno
        if line is None:
            return None
        return dg.CodeReferencesMetadataValue(code_references=[
            dg.LocalFileCodeReference(file_path=path, line_number=line, label=cls.__qualname__)])

    def get_column_lineage(self, table, parent_keys: dict[str, dg.AssetKey]) -> dg.TableColumnLineage | None:
        """Exact column lineage from the foreign keys: each inherited attribute depends on
        its parent's attribute (renamed ones included). ``parent_keys``: full table name ->
        asset key of the parents in the pipeline."""
        deps: dict[str, list] = {}
        for parent, data in table._connection.dependencies.parents(table.full_table_name):
            key = parent_keys.get(parent)
            if key is None:
                continue
            for child_attr, parent_attr in data.get("attr_map", {}).items():
                deps.setdefault(child_attr, []).append(dg.TableColumnDep(asset_key=key, column_name=parent_attr))
        return dg.TableColumnLineage(deps_by_column=deps) if deps else None

    def get_metadata(self, table) -> dict:
        meta = {
            "dj/table": table.full_table_name,
            "dj/tier": table.tier,
            "dagster/column_schema": self.get_column_schema(table),
            "dagster/table_name": table.full_table_name,
            "dj/definition": dg.MetadataValue.md(f"```\n{table.describe()}```"),
        }
        references = self.get_code_references(table)
        if references is not None:
            meta["dagster/code_references"] = references
        return meta

    def get_asset_spec(self, table, deps: list[dg.AssetKey], partitions_def) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.get_asset_key(table),
            deps=deps,
            description=self.get_description(table),
            metadata=self.get_metadata(table),
            group_name=self.get_group_name(table),
            code_version=self.get_code_version(table),
            automation_condition=self.get_automation_condition(table),
            owners=self.get_owners(table) or None,
            tags=self.get_tags(table),
            kinds=self.get_kinds(table),
            partitions_def=partitions_def,
        )


__all__ = ["DataJointTranslator", "naming"]
