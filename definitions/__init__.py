"""Example pipelines. Each module declares its tables and exposes ``defs``."""
