"""datajoint 2.x's settings, connection and package surface, as dj_dagster provides them:
validated settings, secrets kept out of reprs, the secrets folder, DJ_STORES, thread-safe
mode, dj.Instance, conn() never reusing a connection made with other credentials, and
Connection's close / reconnect / context manager."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

import dj_dagster as dj
from dj_dagster import connection as connection_module
from dj_dagster import settings
from dj_dagster.errors import DataJointError, ThreadSafetyError

SERVER_URLS = {
    "mysql": ("127.0.0.1", 3306, "root", ""),
    "postgresql": ("127.0.0.1", 5432, "postgres", ""),
}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No DJ_* server variables, no datajoint.json above the working folder."""
    for var in ("DJ_HOST", "DJ_USER", "DJ_PASS", "DJ_PORT", "DJ_BACKEND", "DJ_STORES", "DJ_DATABASE_URL",
                "DJ_IGNORE_CONFIG_FILE", "DJ_THREAD_SAFE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings, "SYSTEM_SECRETS_DIR", tmp_path / "no-system-secrets")
    return tmp_path


# --- settings --------------------------------------------------------------------
def test_settings_are_validated_and_name_the_setting():
    cfg = settings.Config()
    with pytest.raises(ValidationError, match="port"):
        cfg.database.port = "not a port"
    with pytest.raises(ValidationError, match="backend"):
        cfg["database.backend"] = "oracle"
    with pytest.raises(ValidationError, match="no_such_setting"):
        cfg.no_such_setting = 1
    cfg.database.port = "3307"  # text that is a number is accepted, as pydantic does
    assert cfg.database.port == 3307
    cfg["diagram_direction"] = "BT"  # the old flat name; BT and RL are drawn too
    assert cfg.display.diagram_direction == "BT"
    with pytest.raises(ValidationError, match="diagram_direction"):
        cfg.display.diagram_direction = "XY"
    cfg.query_cache = "/tmp/cache"
    assert str(cfg.query_cache) == "/tmp/cache" and not isinstance(cfg.query_cache, str)


def test_password_is_secret_everywhere_but_item_access():
    cfg = settings.Config()
    cfg.database.password = "hunter2-secret"
    assert isinstance(cfg.database.password, SecretStr)
    assert cfg["database.password"] == "hunter2-secret"
    for text in (repr(cfg), str(cfg), repr(cfg.database), repr(cfg.database.password)):
        assert "hunter2-secret" not in text
    with pytest.raises(ValidationError) as info:
        cfg.database.password = 12345  # not text: refused, and the value is not shown
    assert "12345" not in str(info.value)


def test_override_restores_group_settings_and_secrets():
    cfg = settings.Config()
    cfg.database.password = "before"
    with cfg.override(database__host="elsewhere", database__password="during", safemode=True):
        assert cfg.database.host == "elsewhere" and cfg["database.password"] == "during"
    assert cfg.database.host == "localhost" and cfg["database.password"] == "before"
    assert isinstance(cfg.database.password, SecretStr)


def test_port_follows_backend_at_build_time_only(monkeypatch, clean_env):
    monkeypatch.setenv("DJ_BACKEND", "postgresql")
    assert settings.DatabaseSettings().port == 5432
    db = settings.DatabaseSettings({"backend": "mysql", "port": None})
    assert db.port == 3306
    db.backend = "postgresql"
    assert db.port == 3306  # datajoint's rule: shown as built...
    assert db.server_port() == 5432  # ...but a connection uses the backend's default until a port is set
    db.port = 6000
    assert db.server_port() == 6000


def test_file_secrets_and_dj_stores_precedence(monkeypatch, clean_env):
    tmp = clean_env
    (tmp / settings.CONFIG_FILENAME).write_text(json.dumps(
        {"database": {"host": "from-file", "user": "file-user"},
         "stores": {"main": {"protocol": "file", "location": "/from/file"}}}))
    secrets = tmp / settings.SECRETS_DIRNAME
    secrets.mkdir()
    (secrets / "database.user").write_text("secret-user\n")
    (secrets / "database.password").write_text("secret-pass\n")
    (secrets / "stores.main.token").write_text("tok")
    monkeypatch.setenv("DJ_HOST", "from-env")
    cfg = settings._create_config()
    assert cfg.database.host == "from-env"  # the environment wins over the file
    assert cfg.database.user == "file-user"  # the file wins over the secrets folder
    assert cfg["database.password"] == "secret-pass"  # the secrets folder fills what is unset
    assert cfg.stores["main"] == {"protocol": "file", "location": "/from/file", "token": "tok"}

    monkeypatch.setenv("DJ_STORES", json.dumps({"main": {"protocol": "s3", "location": "from-env"}}))
    cfg = settings._create_config()
    assert cfg.stores["main"]["location"] == "from-env" and cfg.stores["main"]["token"] == "tok"

    monkeypatch.setenv("DJ_IGNORE_CONFIG_FILE", "true")
    cfg = settings._create_config()
    assert cfg.database.user is None and cfg.database.password is None

    monkeypatch.setenv("DJ_STORES", "[1, 2]")
    with pytest.raises(ValueError, match="DJ_STORES must be a JSON object"):
        settings._create_config()


def test_load_missing_file_and_template(clean_env):
    cfg = settings.Config()
    with pytest.raises(FileNotFoundError):
        cfg.load(clean_env / "absent.json")
    written = settings.Config.save_template(clean_env / "datajoint.json")
    assert json.loads(written.read_text())["database"] == {"host": "localhost", "port": 3306}
    assert (clean_env / ".secrets" / "database.password").exists()
    with pytest.raises(FileExistsError):
        settings.Config.save_template(clean_env / "datajoint.json")
    cfg.load(written)
    assert cfg.database.host == "localhost"


def test_get_store_spec():
    cfg = settings.Config()
    cfg.stores = {"default": "main", "main": {"protocol": "file", "location": "/data"}}
    spec = cfg.get_store_spec()
    assert spec["location"] == "/data" and spec["hash_prefix"] == "_hash" and spec["token_length"] == 8
    cfg.stores["bad"] = {"protocol": "s3", "endpoint": "s3.example", "location": "x"}
    with pytest.raises(DataJointError, match="bad.*missing: bucket"):
        cfg.get_store_spec("bad")
    cfg.stores["nested"] = {"protocol": "file", "location": "/d", "hash_prefix": "a", "schema_prefix": "a/b"}
    with pytest.raises(DataJointError, match="overlap"):
        cfg.get_store_spec("nested")
    cfg.stores = {}
    with pytest.raises(DataJointError, match="stores.default is not configured"):
        cfg.get_store_spec()


# --- thread-safe mode and Instance ------------------------------------------------
def test_thread_safe_mode_refuses_global_state(monkeypatch, tmp_path):
    monkeypatch.setenv("DJ_THREAD_SAFE", "yes")
    with pytest.raises(ThreadSafetyError):
        dj.config.database
    with pytest.raises(ThreadSafetyError):
        dj.config["safemode"] = False
    with pytest.raises(ThreadSafetyError):
        dj.conn()
    assert "thread-safe" in repr(dj.config)
    dj.config.save_template(tmp_path / "datajoint.json", create_secrets_dir=False)  # a static method: allowed
    monkeypatch.setenv("DJ_THREAD_SAFE", "false")
    assert isinstance(dj.config.database.host, str)


@pytest.mark.backends("mysql", "postgresql")
def test_instance_has_its_own_config_and_connection(backend, monkeypatch):
    host, port, user, password = SERVER_URLS[backend]
    monkeypatch.setenv("DJ_THREAD_SAFE", "true")
    inst = dj.Instance(host=host, user=user, password=password, port=port, backend=backend,
                       database__reconnect=False)
    try:
        assert inst.config.database.backend == backend and inst.config.database.reconnect is False
        assert inst.connection.query("SELECT 1").fetchone()[0] == 1
        assert inst.connection.backend == backend
    finally:
        inst.connection.close()


# --- conn() and Connection --------------------------------------------------------
@pytest.fixture
def fresh_default(monkeypatch):
    """conn()'s default connection, reset before and closed after the test."""
    monkeypatch.setattr(connection_module, "_default", None)
    yield
    if connection_module._default is not None:
        connection_module._default.close()


@pytest.mark.backends("mysql", "postgresql")
def test_conn_with_other_credentials_never_returns_the_old_connection(backend, fresh_default, connection):
    """Regression: datajoint returns the open default connection even when conn() is
    given other credentials; dj_dagster replaces it."""
    host, port, user, password = SERVER_URLS[backend]
    other = f"djcompat_{backend[:2]}"
    quoted = f"'{other}'@'%%'" if backend == "mysql" else other  # conn.query formats: %% is %
    connection.query(f"DROP USER IF EXISTS {quoted}")
    connection.query(f"CREATE USER {quoted} IDENTIFIED BY 'pw_{other}'" if backend == "mysql"
                     else f"CREATE USER {other} PASSWORD 'pw_{other}'")
    try:
        with dj.config.override(database__backend=backend, database__port=port):
            first = dj.conn(f"{host}:{port}", user, password)
            assert dj.conn(f"{host}:{port}", user, password) is first and dj.conn() is first
            first = dj.conn(f"{host}:{port}", user, password, use_tls=False)  # other TLS: a new connection
            assert first.conn_info["ssl_input"] is False and dj.conn() is first
            second = dj.conn(f"{host}:{port}", other, f"pw_{other}")
            assert second is not first
            assert second.get_user().split("@")[0] == other
            assert dj.conn() is second
            if backend == "mysql":  # (the test PostgreSQL trusts every password)
                with pytest.raises(DataJointError) as info:  # a wrong password never gets the old connection
                    dj.conn(f"{host}:{port}", other, "wrong-password").query("SELECT 1")
                assert "wrong-password" not in str(info.value)
            assert dj.conn(f"{host}:{port}", user, password) is not second
    finally:
        if connection_module._default is not None:
            connection_module._default.close()
        connection.query(f"DROP USER IF EXISTS {quoted}")


def test_connection_close_reconnect_and_context_manager(connection):
    assert connection.is_connected and "connected" in repr(connection)
    connection.close()
    assert not connection.is_connected and "disconnected" in repr(connection)
    assert connection.query("SELECT 1", reconnect=True).fetchone()[0] == 1
    assert connection.is_connected
    connection.close()
    with pytest.raises(DataJointError, match="closed"):
        connection.query("SELECT 1", reconnect=False)
    with type(connection)(connection.url) as twin:
        assert twin.is_connected
    assert not twin.is_connected
    assert connection.conn_info["ssl_input"] is None and "ssl" not in connection.conn_info


def test_closing_inside_a_transaction_loses_it(connection, schema):
    @schema
    class Item(dj.Manual):
        definition = """
        item : int32
        """

    with connection.transaction:
        Item.insert1((1,))
        connection.close()
        with pytest.raises(DataJointError, match="lost during a transaction"):
            connection.query("SELECT 1", reconnect=True)
    assert len(Item()) == 0  # the insert was rolled back with the lost connection
    Item.insert1((2,))
    assert len(Item()) == 1


# --- package surface --------------------------------------------------------------
def test_package_surface_and_lazy_modules():
    code = ("import sys, dj_dagster as dj\n"
            "assert 'dj_dagster.diagram' not in sys.modules and 'dj_dagster.cli' not in sys.modules\n"
            "assert None not in (dj.Table, dj.AutoPopulate, dj.Instance, dj.errors.ThreadSafetyError, dj.logger)\n"
            "assert callable(dj.cli) and dj.Diagram.__name__ == 'Diagram'\n"
            "assert dj.__version__\n"
            "assert sys.excepthook is sys.__excepthook__\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_utils_names():
    from dj_dagster.utils import from_camel_case, is_camel_case, to_camel_case

    assert is_camel_case("AllGroups") and not is_camel_case("allGroups") and not is_camel_case("All_Groups")
    assert from_camel_case("ProcessedEMG") == "processed_e_m_g"
    with pytest.warns(UserWarning, match="underscores"), pytest.raises(DataJointError):
        from_camel_case("#bad_name")
    assert to_camel_case("this_is_a_sample_case") == "ThisIsASampleCase"


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as info:
        dj.cli(["-V"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"{dj.__name__} {dj.__version__}\n"


def test_import_loads_no_heavy_library():
    """Issue 20: pandas, sqlglot and networkx load where they are used, not at import."""
    code = ("import sys, dj_dagster\n"
            "heavy = [m for m in ('pandas', 'sqlglot', 'networkx', 'dagster') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.backends("mysql", "postgresql")
def test_use_tls_true_never_connects_in_plain_text(backend):
    """use_tls=True requires TLS: either the session is encrypted or the connection fails
    (pymysql reads an empty ssl dict as "no TLS", so it must never be what we pass)."""
    host, port, user, password = SERVER_URLS[backend]
    c = dj.Connection(f"{host}:{port}", user, password, backend=backend, use_tls=True)
    try:
        check = ("SHOW STATUS LIKE 'Ssl_cipher'" if backend == "mysql"
                 else "SELECT ssl::text, 'x' FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        row = c.query(check).fetchone()
    except DataJointError as exc:
        assert "SSL" in str(exc) or "TLS" in str(exc)
    else:
        assert row[1] and row[1] != "false" if backend == "mysql" else row[0] == "true"
    finally:
        c.close()
    plain = dj.Connection(f"{host}:{port}", user, password, backend=backend, use_tls=False)
    try:
        assert plain.query("SELECT 1").fetchone()[0] == 1
        assert plain.conn_info["ssl_input"] is False and "ssl" not in plain.conn_info
    finally:
        plain.close()


def test_provenance_source_must_be_json_at_assignment():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValidationError, match="JSON-serializable"):
        settings.ProvenanceSettings(source=cyclic)
    assert settings.ProvenanceSettings(source={"system": "lab"}).source == {"system": "lab"}
