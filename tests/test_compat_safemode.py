"""Safe mode, as datajoint has it: with ``config["safemode"]`` (on unless DJ_SAFEMODE says
otherwise) delete and drop ask through ``input()`` wherever it can be answered -- a
terminal, Jupyter (which replaces ``input``), here a patched ``builtins.input`` while
stdin is not a TTY -- and answering no returns with a message, not a traceback."""

from __future__ import annotations

import builtins

import pytest

import dj_dagster as dj
from dj_dagster import settings


@pytest.fixture
def answers(monkeypatch):
    """Scripted answers to input(); records the questions asked."""
    asked, queue = [], []

    def fake_input(question=""):
        asked.append(question)
        if not queue:
            raise AssertionError(f"unexpected question: {question}")
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(builtins, "input", fake_input)
    return asked, queue


@pytest.fixture
def tables(schema, monkeypatch):
    monkeypatch.setitem(dj.config, "safemode", True)

    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int32
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int32
        """

    Subject.insert([(1,), (2,)])
    Session.insert([(1, 1), (1, 2), (2, 1)])
    return Subject, Session


def test_safemode_is_on_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("DJ_SAFEMODE", raising=False)
    assert settings._default_safemode() is True
    for off in ("0", "false", "no"):
        monkeypatch.setenv("DJ_SAFEMODE", off)
        assert settings._default_safemode() is False
    monkeypatch.setenv("DJ_SAFEMODE", "1")
    assert settings._default_safemode() is True


@pytest.mark.parametrize("answer", ["no", "", "NO "])
def test_answering_no_keeps_the_rows_and_says_so(tables, answers, capsys, answer):
    Subject, Session = tables
    asked, queue = answers
    queue.append(answer)
    assert (Subject & {"subject_id": 1}).delete() == 0
    assert len(asked) == 1 and "Commit deletes?" in asked[0]
    assert "Delete cancelled" in capsys.readouterr().out
    assert len(Subject()) == 2 and len(Session()) == 3


def test_answering_yes_deletes_after_asking_again_on_nonsense(tables, answers):
    Subject, Session = tables
    asked, queue = answers
    queue.extend(["maybe", "yes"])
    assert (Subject & {"subject_id": 1}).delete() == 1
    assert len(asked) == 2
    assert len(Subject()) == 1 and len(Session()) == 1


def test_no_input_at_all_means_no(tables, answers, capsys):
    Subject, Session = tables
    asked, queue = answers
    queue.append(EOFError())
    assert Subject.delete() == 0
    assert len(Subject()) == 2
    assert "Delete cancelled" in capsys.readouterr().out


def test_prompt_false_and_safemode_off_skip_the_question(tables, answers, monkeypatch):
    Subject, Session = tables
    asked, queue = answers
    assert (Subject & {"subject_id": 2}).delete(prompt=False) == 1
    monkeypatch.setitem(dj.config, "safemode", False)
    assert (Subject & {"subject_id": 1}).delete() == 1
    assert asked == [] and len(Session()) == 0


def test_drop_answered_no_keeps_the_table(tables, answers, capsys, schema):
    Subject, Session = tables
    asked, queue = answers
    queue.append("no")
    Subject.drop()
    assert "Drop cancelled" in capsys.readouterr().out
    assert set(schema.list_tables()) >= {"subject", "session"} and len(Session()) == 3
    queue.append("yes")
    Session.drop()
    assert "session" not in schema.list_tables()


def test_schema_drop_answered_no_keeps_the_schema(tables, answers, capsys, schema):
    asked, queue = answers
    queue.append("no")
    schema.drop()
    assert "Drop cancelled" in capsys.readouterr().out
    assert schema.exists and set(schema.list_tables()) >= {"subject", "session"}


def test_questions_go_through_dj_utils_user_choice(tables, monkeypatch):
    """As in datajoint, where tests and tools answer by patching ``dj.utils``'s input."""
    Subject, Session = tables
    asked = []
    monkeypatch.setattr(dj.utils, "input", lambda question: asked.append(question) or "yes", raising=False)
    assert (Subject & {"subject_id": 2}).delete() == 1
    assert len(asked) == 1 and "[yes, No]" in asked[0]
