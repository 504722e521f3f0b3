"""Drives a Slipway server with the real marathon-python client (PyPI `marathon` 0.13).

Usage: python marathon_client.py URL USER PASSWORD. Exits non-zero with a message on any
mismatch. Authenticates with HTTP Basic, and checks that no credentials means 401.
"""
import sys
import threading
import time

from marathon import MarathonClient, MarathonApp
from marathon.exceptions import MarathonHttpError, NotFoundError

url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    MarathonClient(url).list_apps()
    raise SystemExit("listing apps without credentials did not fail")
except MarathonHttpError as e:
    assert e.status_code == 401, e
try:
    MarathonClient(url, username=user, password="wrong").list_apps()
    raise SystemExit("listing apps with a wrong password did not fail")
except MarathonHttpError as e:
    assert e.status_code == 401, e
c = MarathonClient(url, username=user, password=password)


def wait(what, pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)


assert c.ping() is not None
info = c.get_info()
assert info.name == "marathon", info
assert c.get_leader() is not None

# The event stream parses with the client's own event classes.
seen = []
def listen():
    for ev in c.event_stream(event_types=["deployment_success", "status_update_event"]):
        seen.append(ev.event_type)
threading.Thread(target=listen, daemon=True).start()
time.sleep(0.5)

app = c.create_app("pyapp", MarathonApp(cmd="sleep 600", instances=1, mem=16, cpus=0.1))
assert app.id == "/pyapp", app.id
assert len(c.list_deployments()) >= 1
assert any(a.id == "/pyapp" for a in c.list_apps(embed_tasks=True, embed_counts=True))
wait("1 running task", lambda: c.get_app("/pyapp").tasks_running == 1)
# A task counts as ready once it has run for 2 s (a crash loop never completes a
# deployment): until then the app is locked, as Marathon locks apps during deployments.
wait("the first deployment", lambda: not c.list_deployments())

c.scale_app("/pyapp", instances=3)
wait("3 running tasks", lambda: c.get_app("/pyapp").tasks_running == 3)
wait("no deployments", lambda: not c.list_deployments())
tasks = c.list_tasks("/pyapp")
assert len(tasks) == 3, tasks
assert all(t.state == "TASK_RUNNING" for t in tasks)
assert len(c.list_versions("/pyapp")) == 2

c.scale_app("/pyapp", delta=-1)
wait("2 tasks", lambda: len(c.list_tasks("/pyapp")) == 2 and not c.list_deployments())
c.restart_app("/pyapp")
wait("restart done", lambda: not c.list_deployments())
# Old tasks may still be shutting down (TASK_KILLING) when the deployment is done.
wait("old tasks gone", lambda: len(c.list_tasks("/pyapp")) == 2)
c.kill_given_tasks([c.list_tasks("/pyapp")[0].id], scale=True)
wait("1 task after kill with scale", lambda: c.get_app("/pyapp").instances == 1 and len(c.list_tasks("/pyapp")) == 1)

c.delete_app("/pyapp", force=True)
try:
    c.get_app("/pyapp")
    raise SystemExit("app still exists after delete")
except NotFoundError:
    pass
wait("tasks gone", lambda: not c.list_tasks())
wait("events seen", lambda: "deployment_success" in seen and "status_update_event" in seen, timeout=15)
print("marathon-python OK:", sorted(set(seen)))
