"""The worker's health probe and the status file it reads."""

import json
import subprocess
import sys
import time
from pathlib import Path

import redis

from worker import check, jobs
from worker.main import build_worker


def write(path, **status) -> None:
    path.write_text(json.dumps(status))


def test_a_worker_notes_its_heartbeats_for_the_probe(job_context, unit_redis_url, tmp_path):
    status_file = tmp_path / "status.json"
    settings = job_context.settings.model_copy(update={"status_file": str(status_file)})
    assert str(check.problem(str(status_file))).startswith("no status in ")
    connection = redis.Redis.from_url(unit_redis_url)
    worker = build_worker(jobs.JobContext(settings=settings, engine=job_context.engine), connection)
    worker.register_birth()
    try:
        worker.heartbeat()
        assert check.problem(str(status_file)) is None
        assert check.main(["check", str(status_file)]) == 0
        status = json.loads(status_file.read_text())
        assert status["state"] == "ok"
        assert status["fresh_for"] > settings.worker_ttl_seconds
    finally:
        worker.register_death()
        connection.close()


def test_the_probe_refuses_a_stale_a_failing_or_a_garbled_status(tmp_path, capsys) -> None:
    path = tmp_path / "status.json"
    write(path, at=time.time() - 100, state="ok", fresh_for=81)
    assert check.problem(str(path)) == "no heartbeat for 100 s (the last one held for 81 s)"
    write(path, at=time.time(), state="waiting for the database", fresh_for=81)
    assert check.main(["check", str(path)]) == 1
    assert capsys.readouterr().err == "waiting for the database\n"
    for garbage in ("", "[]", '{"at": 1}', '{"at": "x", "state": "ok", "fresh_for": 1}'):
        path.write_text(garbage)
        assert str(check.problem(str(path))).startswith("unreadable status in ")


def test_an_unchanged_state_is_rewritten_at_most_once_an_interval(tmp_path) -> None:
    path = tmp_path / "status.json"
    status = check.StatusFile(str(path), min_interval=60)
    status.record("ok", fresh_for=35)
    first = path.read_text()
    status.record("ok", fresh_for=35)
    assert path.read_text() == first
    # A longer promise and a new state are written at once.
    status.record("ok", fresh_for=80)
    assert json.loads(path.read_text())["fresh_for"] == 80 + 60
    status.record("lost Redis", fresh_for=35)
    assert json.loads(path.read_text())["state"] == "lost Redis"


def test_a_status_file_that_cannot_be_written_does_not_stop_the_worker(tmp_path) -> None:
    status = check.StatusFile(str(tmp_path / "missing" / "status.json"))
    status.record("ok", fresh_for=35)
    assert str(check.problem(status.path)).startswith("no status in ")


def test_the_probe_imports_only_the_standard_library() -> None:
    code = (
        "import sys, worker.check\n"
        "print(sorted({name.split('.')[0] for name in sys.modules}"
        " - set(sys.stdlib_module_names) - {'__main__', 'worker'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(check.__file__).parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
