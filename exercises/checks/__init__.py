"""The checks of the course exercises, one module per exercise (``exNN_<name>.py``); each takes
the code under test as an argument, so that ``tests/test_exercise_checkers.py`` can show that it
rejects plausible mistakes with the right hint."""
