"""LDAP sync at scale: 100,000 people in a real slapd, against a raw python-ldap paged read.

Run: .venv/bin/python benchmarks/ldap_sync.py [--users 100000] [--groups 20] [--database-url URL]

Loads the directory offline with slapadd: the people and `--groups` mapped groups, everyone
in one group and every other person in a second one (150,000 memberships for 100,000
people). Then in one process measures a raw paged read of the same people and groups with
the same attributes (the baseline), the first full import (people and memberships), an
unchanged re-sync, and an incremental sync after 100 entries change; peak memory is the
process's max RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ldap  # noqa: E402
from ldap.controls import SimplePagedResultsControl  # noqa: E402

from benchmarks.cpu import cpu_by_pid, database_pids, used_between  # noqa: E402
from models.actions import organisations  # noqa: E402
from models.actions.directory_connectors import connector_mapping, create_connector  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import DirectoryConnector  # noqa: E402
from models.enums import Source, SyncKind  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.support.slapd import ROOT_DN, ROOT_PASSWORD, SUFFIX, prepare_slapd  # noqa: E402
from worker.directory_sync import run_sync  # noqa: E402

PAGE_SIZE = 1000
CHANGED = 100


def write_ldif(path: Path, users: int, groups: int) -> tuple[str, str]:
    base = f"ou=bench,{SUFFIX}"
    people = f"ou=people,{base}"
    with path.open("w") as out:
        out.write(f"dn: {base}\nobjectClass: organizationalUnit\nou: bench\n\n")
        out.write(f"dn: {people}\nobjectClass: organizationalUnit\nou: people\n\n")
        for n in range(users):
            uid = f"user{n:06d}"
            out.write(
                f"dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                f"cn: Person {n}\nsn: Number{n}\ngivenName: Person\n"
                f"displayName: Person Number {n}\nmail: {uid}@bench.example.org\n\n"
            )
        out.write(f"dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n\n")
        for g in range(groups):
            out.write(f"dn: cn=team{g:02d},ou=groups,{base}\nobjectClass: groupOfNames\n")
            out.write(f"cn: team{g:02d}\n")
            for n in group_members(users, groups, g):
                out.write(f"member: uid=user{n:06d},{people}\n")
            out.write("\n")
    return people, f"ou=groups,{base}"


def group_members(users: int, groups: int, g: int) -> list[int]:
    """Person n is in group n mod `groups`, and an even n also in the next group."""
    first = range(g, users, groups)
    second = [n for n in range((g - 1) % groups, users, groups) if n % 2 == 0]
    return sorted({*first, *second})


def memberships(users: int, groups: int) -> int:
    return sum(len(group_members(users, groups, g)) for g in range(groups)) if groups else 0


def raw_read(url: str, base: str, filterstr: str, attrs: list[str]) -> int:
    """The baseline: python-ldap's paged search, reading every page, doing nothing else."""
    conn = ldap.initialize(url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie=b"")
    total = 0
    while True:
        msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[control])
        _, data, _, controls = conn.result3(msgid)
        total += len(data)
        cookie = next(c.cookie for c in controls if c.controlType == control.controlType)
        if not cookie:
            break
        control.cookie = cookie
    conn.unbind_s()
    return total


# Whose CPU time a measurement counts besides ours: slapd, and PostgreSQL's backends of the
# benchmark database. CPU seconds do not grow with the machine's load as wall time does.
CPU_OF = {"slapd": 0, "database": ""}
CPU_SPENT: dict[str, list[float]] = {}


def _cpu() -> tuple[float, dict[int, float], dict[int, float]]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    database = cpu_by_pid(database_pids(str(CPU_OF["database"]))) if CPU_OF["database"] else {}
    return usage.ru_utime + usage.ru_stime, database, cpu_by_pid([int(CPU_OF["slapd"])])


STEP_PEAKS: dict[str, list[float]] = {}


def timed(label: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    ours, database, slapd = _cpu()
    reset_peak_rss()
    start = time.perf_counter()
    result = func(*args, **kwargs)
    elapsed = time.perf_counter() - start
    ours_after, database_after, slapd_after = _cpu()
    spent = (
        ours_after - ours,
        used_between(database, database_after),
        used_between(slapd, slapd_after),
    )
    CPU_SPENT.setdefault(label, []).append(sum(spent))
    STEP_PEAKS.setdefault(label, []).append(peak_rss_mb())
    # The busiest backend's CPU: a lower bound on the step's wall time however many
    # processors are free, since one backend runs on one processor.
    busiest = max(
        (seconds - database.get(pid, 0.0) for pid, seconds in database_after.items()),
        default=0.0,
    )
    print(
        f"  {label:38} {elapsed:8.2f} s   (peak RSS of this step {peak_rss_mb():4.0f} MB, "
        f"max RSS so far {max_rss_mb():4.0f} MB; CPU ours "
        f"{spent[0]:.1f} + PostgreSQL {spent[1]:.1f} (busiest backend {busiest:.1f}) "
        f"+ slapd {spent[2]:.1f} = {sum(spent):.1f} s)",
        flush=True,
    )
    return result, elapsed


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def max_rss_mb() -> float:
    return max(PROCESS_PEAK[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


PROCESS_PEAK = [0.0]  # the reset below resets ru_maxrss too: the whole run's peak is kept here


def reset_peak_rss() -> None:
    """Linux: the peak RSS (VmHWM) starts again from the current RSS, so each step's own
    peak is measured, not the largest of the steps before it."""
    PROCESS_PEAK[0] = max(PROCESS_PEAK[0], peak_rss_mb())
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="odock-ldap-bench-"))
    print(f"directory of {args.users} people; work dir {work}")
    slapd = prepare_slapd(work / "slapd")
    people, groups = write_ldif(work / "people.ldif", args.users, args.groups)
    timed("slapadd", slapd.slapadd, work / "people.ldif")
    slapd.start()
    CPU_OF["slapd"] = slapd.process.pid
    try:
        run(slapd, people, groups, args)
    finally:
        slapd.stop()


def run(slapd, people: str, groups: str, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    database_url = args.database_url or f"sqlite:///{slapd.directory.parent / 'bench.sqlite3'}"
    settings = Settings(
        database_url=database_url,
        secret_key="bench-secret-key-0123456789abcdef",
        log_level="ERROR",
        outbound_allow_loopback=True,
    )
    engine = make_engine(settings)
    if engine.dialect.name == "postgresql":
        CPU_OF["database"] = str(engine.url.database)
    upgrade(engine)
    sessions = make_session_factory(engine)
    actor = Actor(Source.ADMIN, "bench")

    def new_connector():  # type: ignore[no-untyped-def]
        """Each import goes to a fresh organisation, so every import starts from nothing."""
        with sessions() as s:
            org = organisations.create_organisation(
                s, name="Bench", slug=f"bench-{time.time_ns()}", actor=actor
            )
            connector = create_connector(
                s,
                organisation=org,
                fields={
                    "name": "bench",
                    "server_urls": [slapd.url],
                    "bind_dn": ROOT_DN,
                    "base_dn": people,
                    "group_base_dn": groups,
                    "group_teams": {f"team{g:02d}": f"Team {g:02d}" for g in range(args.groups)},
                    "page_size": PAGE_SIZE,
                    "search_timeout": 600.0,
                },
                bind_password=ROOT_PASSWORD,
                settings=settings,
                actor=actor,
            )
            s.commit()
            return connector, connector_mapping(connector)

    def sync(connector, kind: SyncKind):  # type: ignore[no-untyped-def]
        outcome = run_sync(
            sessions, settings, connector_id=connector.id, kind=kind, trigger="bench"
        )
        assert outcome.status == "succeeded", outcome
        return outcome

    connector, mapping = new_connector()
    attrs = mapping.user_attributes()
    group_attrs = mapping.group_attributes()
    expected_memberships = memberships(args.users, args.groups)
    print(f"max RSS before the directory is read: {max_rss_mb():.0f} MB")
    print(f"database {engine.dialect.name}; page size {PAGE_SIZE}; attributes {attrs}")
    print(f"{args.groups} mapped groups, {expected_memberships} memberships; {load()}")
    print(f"each measurement {args.repeat} times, each beside its own raw read; best of each")
    raw_times: list[float] = []
    imports: list[float] = []
    resyncs: list[float] = []
    incrementals: list[float] = []

    def both() -> int:
        count = raw_read(slapd.url, people, mapping.user_filter, attrs)
        if args.groups:
            raw_read(slapd.url, groups, mapping.group_filter, group_attrs)
        return count

    def raw() -> None:
        count, seconds = timed("raw paged read, people and groups", both)
        assert count == args.users, count
        raw_times.append(seconds)

    for _ in range(args.repeat):
        raw()
        connector, _ = new_connector()
        first, seconds = timed("first full import", sync, connector, SyncKind.FULL)
        assert first.summary["create"] == args.users, first.summary
        assert first.summary["team_add"] == expected_memberships, first.summary
        imports.append(seconds)
    for _ in range(args.repeat):
        raw()
        again, seconds = timed("unchanged full re-sync", sync, connector, SyncKind.FULL)
        assert again.summary["unchanged"] == args.users, again.summary
        assert again.summary["team_add"] == again.summary["team_remove"] == 0, again.summary
        resyncs.append(seconds)
    conn = slapd.connect()
    step = max(1, args.users // CHANGED)
    for round_ in range(args.repeat):
        for n in range(0, step * CHANGED, step):
            conn.modify_s(
                f"uid=user{n:06d},{people}",
                [(ldap.MOD_REPLACE, "displayName", [f"Renamed {round_} {n}".encode()])],
            )
        changed, seconds = timed(
            "incremental, 100 changed entries", sync, connector, SyncKind.INCREMENTAL
        )
        assert changed.summary["update"] == CHANGED, changed.summary
        incrementals.append(seconds)
    conn.unbind_s()
    n = args.repeat
    # Each sync against the raw read just before it: on a shared machine the load drifts
    # between measurements, so pairs taken seconds apart compare like with like.
    import_ratios = sorted(t / r for t, r in zip(imports, raw_times[:n], strict=True))
    resync_ratios = sorted(t / r for t, r in zip(resyncs, raw_times[n:], strict=True))
    rss = max_rss_mb()
    print()
    print(f"  raw reads                     {', '.join(f'{t:.2f}' for t in raw_times)} s")
    print(f"  first import / raw read       {_ratios(import_ratios)}   (target < 3x)")
    print(f"  unchanged re-sync / raw read  {_ratios(resync_ratios)}   (target < 1.5x)")
    print(f"  incremental (100 changed)     {min(incrementals):6.2f} s   (target < 1 s)")
    raw_cpu = min(CPU_SPENT["raw paged read, people and groups"])
    for label in ("first full import", "unchanged full re-sync"):
        ratios = ", ".join(f"{c / raw_cpu:.2f}" for c in CPU_SPENT[label])
        print(f"  CPU of {label} / least CPU of a raw read: {ratios}")
    for label in (
        "first full import",
        "unchanged full re-sync",
        "incremental, 100 changed entries",
    ):
        peaks = ", ".join(f"{mb:.0f}" for mb in STEP_PEAKS[label])
        print(f"  peak RSS of each {label}: {peaks} MB  (target < 250 MB)")
    print(f"  peak memory (max RSS of the process, all steps)  {rss:6.0f} MB")
    print(f"  {load()}")
    with sessions() as s:
        stored = s.get_one(DirectoryConnector, connector.id)
        print(f"  watermark after incremental   {stored.watermark}")
    engine.dispose()


def _ratios(ratios: list[float]) -> str:
    median = ratios[len(ratios) // 2]
    return f"median {median:4.2f}x (pairs: {', '.join(f'{r:.2f}' for r in ratios)})"


if __name__ == "__main__":
    main()
