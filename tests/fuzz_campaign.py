"""A long fuzzing campaign over pgfast's public API, crash- and hang-proof.

    python tests/fuzz_campaign.py --calls 100000 --seed 0

draws calls from the Hypothesis strategies of ``tests/fuzz_strategies.py`` (the ones
``tests/test_fuzz.py`` runs a bounded number of in the suite) and runs them in worker
subprocesses (``--workers``, default 2), each limited to ``--memory`` GB of address space so an
allocation that is not checked first fails instead of swapping. A worker that dies (segfault,
abort) counts a crash; a call that takes longer than ``--timeout`` seconds counts a hang (the
worker is killed). Either way the call is pickled to ``--out`` (with the worker's stderr, e.g. a
sanitizer report, in ``*.stderr.txt``) (default ``fuzz-findings/``) and
``python tests/fuzz_campaign.py --replay FILE`` runs it again in this process. Since a corrupted
heap often fails a few calls later (or in the garbage collector, between calls: ``...-after.pkl``),
a crash's or hang's file holds the worker's last 8 calls, and ``--replay`` runs them in order. Every other call
is classified by ``fuzz_strategies.run_call`` (ok, documented error, silent NaN/inf, wrong
shape, wrong exception type, message not naming the argument), and the first few of each bad
kind are saved too. The summary prints the counts; the exit status is 1 if any bad count is > 0.
The same ``--seed`` and ``--calls`` draw the same calls.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import select
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHUNK = 500  # calls per worker process (a fresh interpreter per chunk)
RECENT = 8  # a crash's reproducer holds the worker's last calls (heap damage can surface later)


def _worker(chunk_seed: int, n: int, skip: int, inflight: str, memory_gb: float, target: str) -> None:
    """Run n calls drawn with chunk_seed (the first `skip` drawn but not run); one line per call on stdout."""
    if memory_gb > 0:
        import resource

        lim = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    sys.path.insert(0, str(HERE))
    from hypothesis import HealthCheck, Phase, given, seed, settings

    import fuzz_strategies as fs

    fs.CAMPAIGN = True
    out = sys.stdout
    state = {"i": 0}
    recent: list[fs.Call] = []

    @seed(chunk_seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fs.all_calls() if target == "all" else fs.calls(target))
    def body(call: fs.Call) -> None:
        i = state["i"]
        state["i"] += 1
        if i < skip:
            return
        recent.append(call)
        del recent[:-RECENT]
        with open(inflight + ".tmp", "wb") as f:  # written whole, then renamed: a crash while
            pickle.dump(recent, f)                # pickling leaves the previous file intact
        os.replace(inflight + ".tmp", inflight)
        out.write(f"B {i}\n")
        out.flush()
        cat, detail = fs.run_call(call)
        rec = {"i": i, "cat": cat, "target": call.target, "detail": detail[:400]}
        if cat in fs.BAD:
            rec["call"] = pickle.dumps(call).hex()
        out.write("E " + json.dumps(rec) + "\n")
        out.flush()

    body()
    out.write("DONE\n")
    out.flush()


def _run_chunk(args: argparse.Namespace, chunk_seed: int, n: int, wid: int, out: Path,
               counts: collections.Counter[str], saved: collections.Counter[tuple[str, str]], log: list[str]) -> int:
    """Run one chunk (restarting after a crash or hang); returns the number of calls made."""
    skip, made = 0, 0
    inflight = str(out / f".inflight-{chunk_seed}.pkl")
    while True:
        cmd = [sys.executable, __file__, "--worker", str(chunk_seed), str(n), str(skip), inflight, str(args.memory), args.target]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        current: int | None = None
        last = skip - 1
        fault = None
        assert proc.stdout is not None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], args.timeout if current is not None else 120.0)
            if not ready:
                proc.kill()
                fault = "hang"
                break
            line = proc.stdout.readline()
            if not line:
                fault = "crash"
                break
            if line.startswith("B "):
                current = last = int(line[2:])
            elif line.startswith("E "):
                rec = json.loads(line[2:])
                made += 1
                counts["calls"] += 1
                counts[rec["cat"]] += 1
                current = None
                if "call" in rec:
                    key = (rec["cat"], rec["target"] + ":" + rec["detail"][:40])
                    saved[key] += 1
                    if saved[key] == 1:
                        path = out / f"{rec['cat']}-{chunk_seed}-{rec['i']}.pkl"
                        path.write_bytes(bytes.fromhex(rec["call"]))
                        log.append(f"{rec['cat']:10s} {rec['target']}: {rec['detail'][:200]}  [{path.name}]")
            elif line.startswith("DONE"):
                break
        proc.wait() if fault != "hang" else proc.wait(timeout=30)
        stderr = proc.stderr.read() if proc.stderr else ""
        if fault is None:
            if os.path.exists(inflight):
                os.remove(inflight)
            return made
        if current is None and last < skip:  # died before its first call: report it, do not loop
            counts["crash"] += 1
            log.append(f"worker {fault} before any call (chunk {chunk_seed}, rc={proc.returncode}): {stderr[-300:]}")
            return made
        if current is None:
            # Died between calls (a corrupted heap fails later, e.g. in the garbage collector):
            # blame the last call, whose pickle is still in the in-flight file, and go on after it.
            counts["crash"] += 1
            path = out / f"{fault}-{chunk_seed}-{last}-after.pkl"
            try:
                os.replace(inflight, path)
            except OSError:
                pass
            path.with_suffix(".stderr.txt").write_text(stderr)
            log.append(f"{fault:10s} rc={proc.returncode} after the call [{path.name}] {stderr.strip().splitlines()[-1][:200] if stderr.strip() else ''}")
            skip = last + 1
            if skip >= n:
                return made
            continue
        made += 1
        counts["calls"] += 1
        counts[fault] += 1
        path = out / f"{fault}-{chunk_seed}-{current}.pkl"
        try:
            os.replace(inflight, path)
        except OSError:
            pass
        path.with_suffix(".stderr.txt").write_text(stderr)
        log.append(f"{fault:10s} rc={proc.returncode} [{path.name}] {stderr.strip().splitlines()[-1][:200] if stderr.strip() else ''}")
        skip = current + 1
        if skip >= n:
            if os.path.exists(inflight):
                os.remove(inflight)
            return made


def _replay(path: str) -> int:
    sys.path.insert(0, str(HERE))
    import fuzz_strategies as fs

    with open(path, "rb") as f:
        saved = pickle.load(f)
    # a crash or hang holds the worker's last calls, run in order (the last one is the one that
    # was running); other files hold one call
    calls = saved if isinstance(saved, list) else [saved]
    bad = False
    for call in calls:
        print(repr(call))
        cat, detail = fs.run_call(call)
        print("->", cat, detail)
        bad |= cat in fs.BAD
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        _worker(int(argv[1]), int(argv[2]), int(argv[3]), argv[4], float(argv[5]), argv[6])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=100_000, help="number of calls (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes at a time (default 2)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a call counts as a hang (default 20)")
    p.add_argument("--memory", type=float, default=3.0, help="address-space limit per worker, GB (0: none; default 3)")
    p.add_argument("--out", default="fuzz-findings", help="directory for reproducers (default fuzz-findings)")
    p.add_argument("--target", default="all", help="only this target of fuzz_strategies.TARGETS (default: all)")
    p.add_argument("--replay", metavar="FILE", help="run one saved call in this process and print its outcome")
    args = p.parse_args(argv)
    if args.replay:
        return _replay(args.replay)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts: collections.Counter[str] = collections.Counter()
    saved: collections.Counter[tuple[str, str]] = collections.Counter()
    log: list[str] = []
    start = time.time()
    from concurrent.futures import ThreadPoolExecutor

    n_chunks = -(-args.calls // CHUNK)
    sizes = [min(CHUNK, args.calls - k * CHUNK) for k in range(n_chunks)]
    done = [0]

    def job(k: int) -> int:
        made = _run_chunk(args, args.seed * 1_000_003 + k, sizes[k], k % max(1, args.workers), out, counts, saved, log)
        done[0] += 1
        if done[0] % 20 == 0 or done[0] == n_chunks:
            print(f"  {counts['calls']} calls, {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return made

    # Threads only wait on the worker processes; the counters are updated under the GIL.
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as ex:
        list(ex.map(job, range(n_chunks)))
    # Hypothesis skips duplicate draws, so a chunk can make a few calls less than asked: top up.
    extra = n_chunks
    while counts["calls"] < args.calls:
        _run_chunk(args, args.seed * 1_000_003 + extra, min(CHUNK, args.calls - counts["calls"]), 0, out, counts, saved, log)
        extra += 1
    for line in sorted(log):
        print(line)
    bad = {
        "crashes": counts["crash"], "hangs": counts["hang"], "silent NaN/inf": counts["nonfinite"],
        "wrong shapes": counts["bad_shape"], "wrong exception types": counts["wrong_type"],
        "messages not naming the argument": counts["unnamed"],
    }
    print(f"\npgfast fuzz campaign: seed {args.seed}, {time.time() - start:.0f} s, reproducers in {out}/")
    print(f"  calls                             {counts['calls']}")
    print(f"  ok                                {counts['ok']}")
    print(f"  documented errors                 {counts['error']}")
    for k, v in bad.items():
        print(f"  {k:33s} {v}")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
