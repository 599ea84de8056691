"""Instructor tooling for the course: student versions, the course build and the benchmark.

Each tool is a plain script (``python tools/<name>.py --help``) whose work is done by importable functions, so the
tests call them directly. The tools use ``course_utils``; the package never imports them.
"""
