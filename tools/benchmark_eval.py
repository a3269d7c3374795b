#!/usr/bin/env python
"""Evaluation speed and memory, measured against plain baselines in the same run.

1. Ranking (CMC / mAP / mINP) at real protocol sizes with random 768-d features: agreid's chunked,
   sort-free ``evaluate_ranking`` against the classic per-query numpy loop of torchreid / fast-reid's
   Python path (full argsort, then one Python iteration per query), written here as the baseline.
2. k-reciprocal re-ranking at N = Q + G ≈ 12k: ``agreid.evaluation.re_ranking`` against a
   straightforward numpy implementation of the original algorithm (tools/rerank_reference.py).

Each implementation runs in its own fresh process that first builds the same inputs; peak memory is
that process's peak resident memory above the point where the inputs were ready (Linux VmHWM, reset
through /proc/self/clear_refs), so the inputs shared by both sides are not counted. The numpy
baselines run on one thread (numpy's loops are single-threaded); agreid uses ``--threads``. Prints times, peak memory, ratios and the metric agreement.
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import sys
import time
from typing import Any, Dict, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

RANKING_SIZES = {  # name: (queries, gallery, identities, cameras)
    "LAGPeR G->A+G": (3046, 20204, 1523, 9),
    "G2APS-ReID G->A": (4876, 62791, 1219, 2),
}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(task: str, args: tuple, threads: int, conn) -> None:
    import torch

    torch.set_num_threads(threads)
    prepare, run = TASKS[task]
    inputs = prepare(*args)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    start_kb = _status_kb("VmRSS")
    tic = time.perf_counter()
    out = run(*inputs)
    seconds = time.perf_counter() - tic
    conn.send((seconds, max(_status_kb("VmHWM") - start_kb, 0) / 1024.0, out))
    conn.close()


def measure(task: str, args: tuple, threads: int) -> Tuple[float, float, Any]:
    """Run ``TASKS[task]`` in a fresh process (its inputs built there first): (seconds, peak extra MiB, result).

    A fresh spawned process, not a fork: OpenMP thread pools do not survive fork.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, args, threads, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def classic_numpy_ranking(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """The per-query numpy loop of torchreid / fast-reid's Python evaluation (market rule)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = (g_pids[order] == q_pids[q_idx]).astype(np.int32)[np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        last = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = [x / (i + 1.0) for i, x in enumerate(raw_cmc.cumsum())]
        all_ap.append((np.asarray(precision) * raw_cmc).sum() / raw_cmc.sum())
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    return {"cmc": cmc, "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "num_valid": len(all_ap)}


def ranking_problem(name: str, num_rows: int, seed: int = 0):
    """Distances and labels of a protocol-sized random problem; the first ``num_rows`` queries only."""
    import torch

    from agreid.evaluation import compute_distance

    num_q, num_g, ids, cams = RANKING_SIZES[name]
    rng = np.random.default_rng(seed)
    q_pids = np.repeat(np.arange(ids), int(np.ceil(num_q / ids)))[:num_q]
    g_pids = np.concatenate([np.arange(ids), rng.integers(0, ids, num_g - ids)])
    q_cams, g_cams = rng.integers(0, cams, num_q), rng.integers(0, cams, num_g)
    gen = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(num_q, 768, generator=gen), torch.randn(num_g, 768, generator=gen)
    n = num_rows or num_q
    dist = compute_distance(qf[:n], gf, metric="cosine").numpy()
    return dist, q_pids[:n], g_pids, q_cams[:n], g_cams


def _agreid_ranking(dist, qp, gp, qc, gc):
    from agreid.evaluation import evaluate_ranking

    return evaluate_ranking(dist, qp, gp, qc, gc)


def rerank_problem(num_q: int, num_g: int, seed: int = 0):
    import torch

    from agreid.evaluation import compute_distance

    gen = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(num_q, 768, generator=gen), torch.randn(num_g, 768, generator=gen)
    return tuple(compute_distance(a, b, metric="euclidean").sqrt().numpy() for a, b in ((qf, gf), (qf, qf), (gf, gf)))


def _agreid_rerank(q_g, q_q, g_g):
    from agreid.evaluation import re_ranking

    return re_ranking(q_g, q_q, g_g)


def _numpy_rerank(q_g, q_q, g_g):
    spec = importlib.util.spec_from_file_location("rerank_reference", os.path.join(HERE, "rerank_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.re_ranking_numpy_reference(q_g, q_q, g_g)


TASKS = {"rank_agreid": (ranking_problem, _agreid_ranking), "rank_numpy": (ranking_problem, classic_numpy_ranking),
         "rerank_agreid": (rerank_problem, _agreid_rerank), "rerank_numpy": (rerank_problem, _numpy_rerank)}


def bench_ranking(name: str, baseline_queries: int, threads: int) -> Dict[str, Any]:
    num_q = RANKING_SIZES[name][0]
    nb = min(baseline_queries or num_q, num_q)
    ours_t, ours_m, ours = measure("rank_agreid", (name, 0), threads)
    _, _, ours_sub = measure("rank_agreid", (name, nb), threads) if nb < num_q else (0, 0, ours)
    base_t, base_m, base = measure("rank_numpy", (name, nb), 1)
    scale = num_q / nb
    same = (np.allclose(ours_sub["cmc"], base["cmc"], atol=1e-6) and abs(ours_sub["mAP"] - base["mAP"]) < 1e-9
            and abs(ours_sub["mINP"] - base["mINP"]) < 1e-9 and ours_sub["num_valid"] == base["num_valid"])
    return {"name": name, "shape": f"{num_q} x {RANKING_SIZES[name][1]}", "ours_s": ours_t, "ours_mib": ours_m,
            "base_s": base_t * scale, "base_mib": base_m, "baseline_queries": nb, "num_q": num_q,
            "ratio": base_t * scale / ours_t, "identical": same}


def bench_rerank(num_q: int, num_g: int, threads: int) -> Dict[str, Any]:
    ours_t, ours_m, ours = measure("rerank_agreid", (num_q, num_g), threads)
    base_t, base_m, base = measure("rerank_numpy", (num_q, num_g), 1)
    return {"shape": f"N = {num_q} + {num_g}", "ours_s": ours_t, "ours_mib": ours_m, "base_s": base_t,
            "base_mib": base_m, "ratio": base_t / ours_t, "mem_ratio": ours_m / max(base_m, 1e-9),
            "max_abs_diff": float(np.abs(np.asarray(ours) - base).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for agreid (default 2)")
    parser.add_argument("--baseline-queries", type=int, nargs=2, default=(0, 600), metavar=("LAGPER", "G2APS"),
                        help="queries the numpy loop is timed on, scaled linearly to all (0 = all; default 0 600)")
    parser.add_argument("--rerank-size", type=int, nargs=2, default=(3000, 9000), metavar=("Q", "G"))
    parser.add_argument("--skip-rerank", action="store_true")
    parser.add_argument("--skip-ranking", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_ranking:
        print("Ranking: agreid evaluate_ranking vs classic per-query numpy loop (market rule, max_rank 50)")
        print(f"{'protocol':<18}{'Q x G':>15}{'agreid s':>10}{'MiB':>8}{'numpy s':>10}{'MiB':>8}{'ratio':>8}  same")
        for name, nb in zip(RANKING_SIZES, args.baseline_queries):
            r = bench_ranking(name, nb, args.threads)
            note = "" if r["baseline_queries"] == r["num_q"] else \
                f"  (numpy timed on {r['baseline_queries']} queries, scaled)"
            print(f"{r['name']:<18}{r['shape']:>15}{r['ours_s']:>10.2f}{r['ours_mib']:>8.0f}{r['base_s']:>10.1f}"
                  f"{r['base_mib']:>8.0f}{r['ratio']:>7.0f}x  {'yes' if r['identical'] else 'NO'}{note}")
            sys.stdout.flush()
    if not args.skip_rerank:
        q, g = args.rerank_size
        print("\nRe-ranking: agreid re_ranking vs straightforward numpy original (k1=20, k2=6, lambda=0.3)")
        r = bench_rerank(q, g, args.threads)
        print(f"{r['shape']}: agreid {r['ours_s']:.1f} s, {r['ours_mib']:.0f} MiB; numpy {r['base_s']:.1f} s, "
              f"{r['base_mib']:.0f} MiB; speed {r['ratio']:.1f}x, memory {r['mem_ratio']:.2f}x; "
              f"max |difference| {r['max_abs_diff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
