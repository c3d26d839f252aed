"""The test harness: the servers and databases a run uses, the apps in process, and the
real processes on free ports."""
