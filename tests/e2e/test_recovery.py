"""Recovery after kill -9 of dbtd, in a PID namespace of its own: the process
group a dead dbtd's run leaves behind is killed only while its leader is
provably that run's runner, never a process that got the runner's pid later.

The namespace (unshare --pid --fork --mount-proc; the suite runs as root)
gives the test pids no other process takes, and ns_last_pid to hand the
runner's old pid to an unrelated process."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import DBT, DBTD, Dbtd, git, make_repo, run, wait_for

SLOW_SQL = "select count(*) as n from range(100000000000) t(i)\n"
SLOW_STEP = "Invoke dbt build --select slow"
STOPPED = "dbtd stopped while the run was running"

# pid 1 of the namespace: reaps what is orphaned to it, so a killed process
# is gone, not a zombie holding its pid.
REAPER = """
import os, time
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.05)
"""

# Inside the namespace: {pid: [state, pgrp, comm]} of every process.
PS = """
import json, os
out = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open(f"/proc/{p}/stat") as f:
            s = f.read()
    except OSError:
        continue
    rest = s[s.rindex(")") + 2:].split()
    out[p] = [rest[0], int(rest[2]), s[s.index("(") + 1:s.rindex(")")]]
print(json.dumps(out))
"""

# Inside the namespace: start `setsid sleep 1000` so that it gets pid argv[1]
# (the pid after ns_last_pid), which it then leads as its process group.
TAKE_PID = """
import subprocess, sys
target = int(sys.argv[1])
for _ in range(100):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(target - 1))
    p = subprocess.Popen(["setsid", "sleep", "1000"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if p.pid == target:
        sys.exit(0)
    p.kill()
    p.wait()
sys.exit(f"no process got pid {target}")
"""


def child_of(ppid):
    """The pid (as this test sees it) of a child of ppid, or None."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        if int(s[s.rindex(")") + 2:].split()[1]) == ppid:
            return int(p)
    return None


class PidNamespace:
    """A PID namespace with its own /proc; pids below are the namespace's."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable,
             "-c", REAPER],
            # (util-linux 2.38 complains on stderr when pid 1 is killed)
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.init = wait_for("pid 1 of the namespace", lambda: child_of(self.proc.pid))

    def cmd(self, *args):
        return ["nsenter", "--target", str(self.init), "--pid", "--mount", "--"] + list(args)

    def py(self, code, *args):
        return run(self.cmd(sys.executable, "-c", code, *map(str, args))).stdout

    def ps(self):
        return {int(k): v for k, v in json.loads(self.py(PS)).items()}

    def group(self, pgid):
        """The processes of process group pgid (zombies too)."""
        return {p: v for p, v in self.ps().items() if v[1] == pgid}

    def close(self):
        os.kill(self.init, signal.SIGKILL)  # and with it every process in the namespace
        self.proc.wait(timeout=30)


class NsDbtd(Dbtd):
    """dbtd inside the namespace; stop() signals dbtd itself, not nsenter."""

    def __init__(self, root, ns):
        wrapper = os.path.join(root, "dbtd-in-ns")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n" % shlex.join(ns.cmd(DBTD)))
        os.chmod(wrapper, 0o755)
        super().__init__(root, binary=wrapper)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        inner = child_of(self.proc.pid)
        if inner is not None:
            os.kill(inner, sig)
        try:
            rc = self.proc.wait(timeout=30)  # nsenter ends as dbtd did
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logfile.close()
        return rc


@pytest.fixture
def ns():
    for tool in ("unshare", "nsenter", "setsid"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    probe = run(["unshare", "--pid", "--fork", "--mount-proc", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot make a PID namespace (unshare --pid --fork --mount-proc: "
                    f"{probe.stderr.strip()}); it needs root")
    n = PidNamespace()
    yield n
    n.close()


def slow_run(d, workdir):
    """A job whose dbt step runs until it is killed; its running run's id."""
    repo = make_repo(workdir)
    with open(os.path.join(repo, "models", "marts", "slow.sql"), "w") as f:
        f.write(SLOW_SQL)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a slow model")
    d.ok("project", "add", "shop", "--repo", repo)
    d.ok("env", "add", "prod", "--project", "shop", "--branch", "main", "--destination",
         "duckdb", "--path", os.path.join(workdir, "prod.duckdb"), "--threads", "2",
         "--dbt", DBT)
    d.ok("job", "add", "slow", "--env", "prod", "--command", "dbt build --select slow")
    out = json.loads(d.ctl("--json", "job", "run", "slow").stdout)
    assert out["status"] == "running"
    run_id = out["id"]
    wait_for("dbt build to run", lambda: any(
        s["name"] == SLOW_STEP and s["status"] == "running"
        for s in d.json("run", "view", run_id)["steps"]))
    return run_id


def runner_pid(d, run_id):
    """The runner's pid (in the namespace), from dbtd's log."""
    m = re.search(rf'run {run_id} of job "slow" started \(runner pid (\d+)\)', d.log())
    assert m, d.log()
    return int(m.group(1))


def sleeping_as(ns, pid):
    """The `setsid sleep` with pid, leading its own group; or None."""
    p = ns.ps().get(pid)
    return p if p and p[1:] == [pid, "sleep"] and p[0] != "Z" else None


def test_restart_leaves_a_process_with_the_runners_old_pid_alone(workdir, ns):
    d = NsDbtd(workdir, ns).start()
    try:
        run_id = slow_run(d, workdir)
        pid = runner_pid(d, run_id)
        wait_for("dbt in the runner's group", lambda: len(ns.group(pid)) >= 2)
        d.stop(signal.SIGKILL)
        # the group may already be gone with dbtd (killed, it can take the
        # namespace's processes with it on a loaded machine): either is fine
        ns.py("import os, sys\ntry: os.killpg(int(sys.argv[1]), 9)\n"
              "except ProcessLookupError: pass", pid)
        wait_for("the run's processes to be gone",
                 lambda: pid not in ns.ps() and not ns.group(pid), timeout=30)

        # an unrelated process now has the runner's pid, and leads group pid
        ns.py(TAKE_PID, pid)
        sleeper = wait_for("setsid sleep with the runner's old pid",
                           lambda: sleeping_as(ns, pid))

        d = NsDbtd(workdir, ns).start()
        r = d.json("run", "view", run_id)  # answered once recovery is done
        assert sleeping_as(ns, pid) == sleeper, f"pid {pid} was killed: {ns.ps().get(pid)}"
        assert r["status"] == "failed"
        assert r["error"] == (f"{STOPPED}; its processes (group {pid}) could not be proven "
                              "to be the run's own and were left alone")
        step = next(s for s in r["steps"] if s["name"] == SLOW_STEP)
        assert step["status"] == "failed", r
        assert "killed what was left" not in d.log()
    finally:
        if d.proc is not None:
            assert d.stop() == 0


def test_restart_kills_the_group_its_runner_left(workdir, ns):
    d = NsDbtd(workdir, ns).start()
    try:
        run_id = slow_run(d, workdir)
        pid = runner_pid(d, run_id)
        wait_for("dbt in the runner's group", lambda: len(ns.group(pid)) >= 2)
        # stopped, the runner cannot end the run itself when dbtd dies
        # (PR_SET_PDEATHSIG): it is still there when dbtd restarts
        ns.py("import os, sys; os.killpg(int(sys.argv[1]), 19)", pid)
        d.stop(signal.SIGKILL)
        group = ns.group(pid)
        assert pid in group and len(group) >= 2
        assert all(v[0] == "T" for v in group.values()), group

        d = NsDbtd(workdir, ns).start()
        r = d.json("run", "view", run_id)
        assert r["status"] == "failed"
        assert r["error"] == STOPPED
        assert f"run {run_id}: killed what was left of its processes (group {pid})" in d.log()
        wait_for("the run's processes to be gone",
                 lambda: pid not in ns.ps() and not ns.group(pid), timeout=30)
    finally:
        if d.proc is not None:
            assert d.stop() == 0
