"""The university registry (../shared/datasets/university) as DataJoint tables."""

from __future__ import annotations

import os
from pathlib import Path

import dj_dagster as dj

def _find_data() -> Path:
    """shared/ lies beside the repository (as CI lays it); DJ_UNIVERSITY_DATA overrides."""
    candidates = [os.environ.get("DJ_UNIVERSITY_DATA"),
                  Path(__file__).resolve().parents[2] / "shared/datasets/university",
                  "/work/shared/datasets/university"]
    for c in candidates:
        if c and (Path(c) / "Student.csv").exists():
            return Path(c)
    raise FileNotFoundError(f"university dataset not found in {[str(c) for c in candidates if c]}")


DATA = _find_data()


def declare(schema: dj.Schema) -> dict:
    @schema
    class Student(dj.Manual):
        definition = """
        student_id : uint32   # university-wide ID number
        ---
        first_name      : varchar(40)
        last_name       : varchar(40)
        sex             : enum('F', 'M', 'U')
        date_of_birth   : date
        home_address    : varchar(120) # mailing street address
        home_city       : varchar(60)  # mailing address
        home_state      : char(2)      # US state acronym: e.g. OH
        home_zip        : char(10)     # zipcode e.g. 93979-4979
        home_phone      : varchar(20)  # e.g. 414.657.6883x0881
        """

    @schema
    class Department(dj.Manual):
        definition = """
        dept : varchar(6)   # abbreviated department name, e.g. BIOL
        ---
        dept_name    : varchar(200)  # full department name
        dept_address : varchar(200)  # mailing address
        dept_phone   : varchar(20)
        """

    @schema
    class StudentMajor(dj.Manual):
        definition = """
        -> Student
        ---
        -> Department
        declare_date :  date  # when student declared her major
        """

    @schema
    class Course(dj.Manual):
        definition = """
        -> Department
        course  : uint32   # course number, e.g. 1010
        ---
        course_name :  varchar(200)  # e.g. "Neurobiology of Sensation and Movement."
        credits     :  decimal(3,1)  # number of credits earned by completing the course
        """

    @schema
    class Term(dj.Manual):
        definition = """
        term_year : int16
        term      : enum('Spring', 'Summer', 'Fall')
        """

    @schema
    class Section(dj.Manual):
        definition = """
        -> Course
        -> Term
        section : char(1)
        ---
        auditorium :  varchar(12)
        """

    @schema
    class CurrentTerm(dj.Manual):
        definition = """
        omega : int8
        ---
        -> Term
        """

    @schema
    class Enroll(dj.Manual):
        definition = """
        -> Student
        -> Section
        """

    @schema
    class LetterGrade(dj.Lookup):
        definition = """
        grade : char(2)
        ---
        points : decimal(3,2)
        """
        contents = [
            ["A", 4.00], ["A-", 3.67], ["B+", 3.33], ["B", 3.00], ["B-", 2.67], ["C+", 2.33],
            ["C", 2.00], ["C-", 1.67], ["D+", 1.33], ["D", 1.00], ["F", 0.00],
        ]

    @schema
    class Grade(dj.Manual):
        definition = """
        -> Enroll
        ---
        -> LetterGrade
        """

    return dict(Student=Student, Department=Department, StudentMajor=StudentMajor, Course=Course, Term=Term,
                Section=Section, CurrentTerm=CurrentTerm, Enroll=Enroll, LetterGrade=LetterGrade, Grade=Grade)


LOAD_ORDER = ["Student", "Department", "StudentMajor", "Course", "Term", "Section", "CurrentTerm", "Enroll",
              "Grade"]


def load(tables: dict) -> None:
    for name in LOAD_ORDER:
        tables[name].insert(DATA / f"{name}.csv")
