"""Course exercises: the pages ``NN_<name>.md``, the checkers ``test_exNN_<name>.py`` and their
checks (``checks/``). See README.md, the instructor's guide."""
