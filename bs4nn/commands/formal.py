"""``bs4nn formal``: prove the generated top level's interface properties with SymbiYosys."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bs4nn.model.errors import UserError
from bs4nn.sim import formal


def add_arguments(parser):
    cases = "; ".join(f"{case.name}: {case.describe()}" for case in formal.CASES.values())
    parser.add_argument("--case", action="append", choices=list(formal.CASES),
                        help=f"only this configuration (repeatable; default all: {cases})")
    parser.add_argument("--task", action="append", choices=list(formal.TASKS),
                        help="only this task (repeatable; default all: induction = the "
                             "stream rules for every depth, safety = stream rules and one "
                             "result per frame, liveness, ranges = no potential overflows, "
                             "equivalence = each result is the golden model's, cover)")
    parser.add_argument("--depth", type=int, default=None,
                        help="BMC depth (k for induction) of every task (default: "
                             + ", ".join(f"{task} {depth}"
                                         for task, depth in formal.DEPTHS.items())
                             + "; some cases differ: FormalCase.depths)")
    parser.add_argument("--time-limit", type=float, default=formal.TIME_LIMIT,
                        help="seconds per proof, after which a bounded check reports the "
                             "depth it reached (default %(default)s; 0: none)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="proofs run at once (default: one per CPU)")
    parser.add_argument("-o", "--out-dir", default="build/formal")


def run(args):
    if args.depth is not None and args.depth < 2:
        raise UserError(f"--depth must be at least 2, got {args.depth}")
    if args.time_limit < 0:
        raise UserError(f"--time-limit must be at least 0, got {args.time_limit}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    cases = [formal.CASES[name] for name in args.case or formal.CASES]
    tasks = args.task or list(formal.TASKS)
    runs = [(case, task) for case in cases for task in tasks if case.applies(task)]
    if not runs:
        raise UserError(f"nothing to prove: {', '.join(tasks)} applies to none of "
                        f"{', '.join(case.name for case in cases)} (liveness needs no debug "
                        f"stream, equivalence built-in weights)")
    out_dir = Path(args.out_dir)
    print(f"bs4nn formal: {len(runs)} proofs of the generated bs4nn.v into {out_dir} "
          f"(SymbiYosys, {formal.SOLVER})", flush=True)

    def prove(case_task):
        case, task = case_task
        depth = args.depth or case.depth(task)
        # A directory per proof: those running at once never share a file.
        outcome = formal.prove(case, task, depth, out_dir / case.name / task,
                               time_limit=args.time_limit or None)
        print("\n".join(outcome.lines()), flush=True)
        return outcome

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(prove, runs))
    bad = [o for o in outcomes if o.status not in ("bounded", "proved", "covered")]
    stopped = sum(o.stopped for o in outcomes if o not in bad)
    print(f"bs4nn formal: {len(outcomes) - len(bad)}/{len(outcomes)} proofs held"
          + (f" ({stopped} bounded where the time limit stopped them)" if stopped else "")
          + ("" if not bad else f"; failed: {', '.join(f'{o.case} {o.task}' for o in bad)}"))
    return 1 if bad else 0
