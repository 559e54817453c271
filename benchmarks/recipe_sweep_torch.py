"""Fine-tuning recipes for LeNet-300-100 pruned to ~12x: a PyTorch sweep for a GPU (1,167 runs).

Not part of evoprune (no PyTorch dependency): the exploration that chose the fine-tuning
recipe of ``configs/lenet-300-100.toml``. It replays ``ModelFinetuner``'s whole-model
fine-tuning (Adam with Keras's eps 1e-7, masks applied after every update, cosine decay
per step, batch 128, distillation from the unpruned logits at T = 4, optional L2 on the
kernels) for many replicas at once (weights stacked, ``torch.bmm``), on the three
baselines of the config (seeds 0-1-2) with per-layer magnitude masks, and writes one row per
fine-tuning (validation and test drop in points) to ``$OUT/results_<plan>.csv``.

Inputs: ``python -m benchmarks.recipe_export --data-dir DIR --out gpu`` (TensorFlow, here)
writes ``mnist_split.npz`` and ``l300_s{0,1,2}.npz``; then on a machine with PyTorch:
``python benchmarks/recipe_sweep_torch.py --inputs gpu --plan p1|p2|p3 [--budget S]``.
p1: one setting at a time around the old recipe (rate, distillation, L2, AdamW, schedule,
allocation, iterative rounds); p2: the (7%, 15%, 50%) allocation, iterative rounds with
restarted cosine, compression ceiling 14-24x; p3: L2 strength x rate. Measured on one
H200 in ~12 min (all three plans); results in ``docs/results/finetune-recipe-sweep/``.
"""

import argparse
import csv
import math
import os
import time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--plan", default="p1")
ap.add_argument("--inputs", default="gpu")
ap.add_argument("--budget", type=float, default=1e9)  # seconds for the whole script
ap.add_argument("--cputest", action="store_true")
ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/out"))
args = ap.parse_args()
T0 = time.time()
os.makedirs(args.out, exist_ok=True)
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
LOG = open(os.path.join(args.out, f"log_{args.plan}.txt"), "a")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.write(s + "\n")
    LOG.flush()


D = np.load(os.path.join(args.inputs, "mnist_split.npz"))


def prep(s):
    x = torch.tensor(D["x_" + s].reshape(len(D["x_" + s]), 784).astype(np.float32) / 255.0, device=dev)
    y = torch.tensor(D["y_" + s].astype(np.int64).ravel(), device=dev)
    return x, y


XTR, YTR = prep("train")
XVA, YVA = prep("validation")
XTE, YTE = prep("test")
if args.cputest:
    XTR, YTR = XTR[:3000], YTR[:3000]
N = XTR.shape[0]
BS = 128
SPE = (N + BS - 1) // BS
SH = [(784, 300), (300,), (300, 100), (100,), (100, 10), (10,)]
OFF = np.cumsum([0] + [int(np.prod(s)) for s in SH]).tolist()
P = OFF[-1]
KSL = [(OFF[0], OFF[1]), (OFF[2], OFF[3]), (OFF[4], OFF[5])]  # kernel slices
KSIZE = [235200, 30000, 1000]
TOTK = sum(KSIZE)
KMASK = torch.zeros(P, device=dev)
for a, b in KSL:
    KMASK[a:b] = 1


def flat(npz):
    keys = ["fc1_0", "fc1_1", "fc2_0", "fc2_1", "fc3_0", "fc3_1"]
    return np.concatenate([npz[k].astype(np.float32).ravel() for k in keys])


BASES = torch.tensor(
    np.stack([flat(np.load(os.path.join(args.inputs, f"l300_s{s}.npz"))) for s in range(3)]), device=dev
)


def views(th):
    R = th.shape[0]
    return [th[:, OFF[i] : OFF[i + 1]].reshape((R,) + SH[i]) for i in range(6)]


def fwd(th, x):  # x [R,B,784]
    W1, b1, W2, b2, W3, b3 = views(th)
    h = torch.relu(torch.baddbmm(b1[:, None, :], x, W1))
    h = torch.relu(torch.baddbmm(b2[:, None, :], h, W2))
    return torch.baddbmm(b3[:, None, :], h, W3)


@torch.no_grad()
def evaluate(th, x, y, chunk=32):
    accs = []
    for i in range(0, th.shape[0], chunk):
        W1, b1, W2, b2, W3, b3 = views(th[i : i + chunk])
        h = torch.relu(torch.matmul(x, W1) + b1[:, None, :])
        h = torch.relu(torch.matmul(h, W2) + b2[:, None, :])
        o = torch.matmul(h, W3) + b3[:, None, :]
        accs.append((o.argmax(-1) == y[None]).float().mean(1))
    return torch.cat(accs).cpu().numpy()


BASE_VA = evaluate(BASES, XVA, YVA)
BASE_TE = evaluate(BASES, XTE, YTE)
log("baseline val", BASE_VA, "test", BASE_TE, "N", N)
TEMP = 4.0
with torch.no_grad():
    tl = []
    for s in range(3):
        W1, b1, W2, b2, W3, b3 = [v[0] for v in views(BASES[s : s + 1])]
        h = torch.relu(XTR @ W1 + b1)
        h = torch.relu(h @ W2 + b2)
        tl.append(h @ W3 + b3)
    TL = torch.stack(tl)  # [3,N,10]
    TP = torch.softmax(TL / TEMP, -1)
    TLP = torch.log_softmax(TL / TEMP, -1)
    log("teacher train acc", [(TL[s].argmax(-1) == YTR).float().mean().item() for s in range(3)])

HAN = (0.08, 0.09, 0.26)
DEFAULT = dict(
    seed=0,
    rep=0,
    alloc=HAN,
    scale=1.0,
    lr=1e-3,
    sched="cos",
    alpha=0.9,
    l2=0.0,
    wdec=0.0,
    k=1,
    split="even",
    rsched="global",
    name="prod",
)


def keep_counts(alloc, scale, frac_pow):
    """alloc: tuple of per-layer fractions, or ('global', frac).

    scale divides fractions (compression x scale). frac_pow in (0,1]: fraction of the way
    (geometric) from dense to target. Returns per-layer counts or ('g',K).
    """
    if alloc[0] == "global":
        f = min(1.0, alloc[1] / scale) ** frac_pow
        return ("g", int(round(f * TOTK)))
    return tuple(int(round(min(1.0, fl / scale) ** frac_pow * n)) for fl, n in zip(alloc, KSIZE))


def round_starts(c, E):
    k = c["k"]
    if k == 1:
        return [0]
    if c["split"] == "even":
        return [int(round(j * E / k)) for j in range(k)]
    # 'end': last round gets half the epochs
    h = E / 2
    return [int(round(j * h / (k - 1))) for j in range(k - 1)] + [int(round(h))]


def lr_table(cfgs, E):
    S = E * SPE
    tab = np.zeros((S, len(cfgs)), np.float32)
    for r, c in enumerate(cfgs):
        if c["rsched"] == "restart":
            st = [s * SPE for s in round_starts(c, E)] + [S]
            segs = [(st[j], st[j + 1]) for j in range(len(st) - 1)]
        else:
            segs = [(0, S)]
        for a, b in segs:
            n = b - a
            t = np.arange(n) / max(n, 1)
            if c["sched"] == "cos":
                m = 0.5 * (1 + np.cos(np.pi * t))
            elif c["sched"] == "step":
                m = np.where(t < 0.5, 1.0, np.where(t < 0.75, 0.1, 0.01))
            elif c["sched"] == "const":
                m = np.ones_like(t)
            elif c["sched"] == "lin":
                m = 1 - t
            tab[a:b, r] = c["lr"] * m
    return torch.tensor(tab, device=dev)


@torch.no_grad()
def prune(th, mask, r, cnt):
    if cnt[0] == "g":
        a = torch.cat([th[r, a_:b_].abs() * mask[r, a_:b_] for a_, b_ in KSL])
        idx = torch.topk(a, cnt[1]).indices
        new = torch.zeros_like(a)
        new[idx] = 1
        o = 0
        for a_, b_ in KSL:
            mask[r, a_:b_] = new[o : o + b_ - a_]
            o += b_ - a_
    else:
        for (a_, b_), kc in zip(KSL, cnt):
            a = th[r, a_:b_].abs() * mask[r, a_:b_]
            idx = torch.topk(a, kc).indices
            new = torch.zeros_like(a)
            new[idx] = 1
            mask[r, a_:b_] = new


def train_group(cfgs, E, gseed=0):
    R = len(cfgs)
    sidx = torch.tensor([c["seed"] for c in cfgs], device=dev)
    th = BASES[sidx].clone()
    mask = torch.ones(R, P, device=dev)
    m = torch.zeros(R, P, device=dev)
    v = torch.zeros(R, P, device=dev)
    alpha = torch.tensor([c["alpha"] for c in cfgs], device=dev)
    l2 = torch.tensor([c["l2"] for c in cfgs], device=dev)[:, None] * KMASK[None] * 2
    wdec = torch.tensor([c["wdec"] for c in cfgs], device=dev)[:, None] * KMASK[None]
    use_l2 = any(c["l2"] > 0 for c in cfgs)
    use_wd = any(c["wdec"] > 0 for c in cfgs)
    lrt = lr_table(cfgs, E)
    starts = [round_starts(c, E) for c in cfgs]
    gen = torch.Generator(device=dev)
    gen.manual_seed(1000 + gseed)
    b1, b2, eps = 0.9, 0.999, 1e-7
    step = 0
    t0 = time.time()
    for e in range(E):
        for r, c in enumerate(cfgs):
            if e in starts[r]:
                j = max(jj for jj, ee in enumerate(starts[r]) if ee == e)
                prune(th, mask, r, keep_counts(c["alloc"], c["scale"], (j + 1) / c["k"]))
        th.mul_(mask)
        m.mul_(mask)
        v.mul_(mask)
        perm = torch.argsort(torch.rand(R, N, device=dev, generator=gen), dim=1)
        for i in range(SPE):
            idx = perm[:, i * BS : (i + 1) * BS]
            xb = XTR[idx]
            yb = YTR[idx]
            tp = TP[sidx[:, None], idx]
            tlp = TLP[sidx[:, None], idx]
            thg = th.detach().requires_grad_(True)
            lo = fwd(thg, xb)
            ce = -torch.log_softmax(lo, -1).gather(-1, yb[..., None]).squeeze(-1).mean(1)
            kl = (tp * (tlp - torch.log_softmax(lo / TEMP, -1))).sum(-1).mean(1)
            loss = ((1 - alpha) * ce + alpha * TEMP * TEMP * kl).sum()
            (g,) = torch.autograd.grad(loss, thg)
            with torch.no_grad():
                if use_l2:
                    g.addcmul_(l2, th)
                g.mul_(mask)
                step += 1
                lr = lrt[step - 1]
                at = (lr * (math.sqrt(1 - b2**step) / (1 - b1**step)))[:, None]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                upd = m / (v.sqrt().add_(eps))
                th.addcmul_(upd, at, value=-1)
                if use_wd:
                    th.addcmul_(th * wdec, lr[:, None], value=-1)
                th.mul_(mask)
        if e == 0 and dev == "cuda":
            torch.cuda.synchronize()
            log(f"  group E={E} R={R}: first epoch {time.time() - t0:.2f}s")
    va = evaluate(th, XVA, YVA)
    te = evaluate(th, XTE, YTE)
    nnz = (mask * KMASK).sum(1).cpu().numpy()
    dt = time.time() - t0
    rows = []
    for r, c in enumerate(cfgs):
        s = c["seed"]
        rows.append(
            dict(
                plan=args.plan,
                E=E,
                name=c["name"],
                seed=s,
                rep=c["rep"],
                alloc=str(c["alloc"]),
                scale=c["scale"],
                lr=c["lr"],
                sched=c["sched"],
                alpha=c["alpha"],
                l2=c["l2"],
                wdec=c["wdec"],
                k=c["k"],
                split=c["split"],
                rsched=c["rsched"],
                nnz=int(nnz[r]),
                comp=round(TOTK / nnz[r], 3),
                val=float(va[r]),
                test=float(te[r]),
                val_drop=round(100 * (BASE_VA[s] - va[r]), 3),
                test_drop=round(100 * (BASE_TE[s] - te[r]), 3),
                group_time=round(dt, 1),
            )
        )
    return rows, dt


CSVP = os.path.join(args.out, f"results_{args.plan}.csv")
FIELDS = [
    "plan",
    "E",
    "name",
    "seed",
    "rep",
    "alloc",
    "scale",
    "lr",
    "sched",
    "alpha",
    "l2",
    "wdec",
    "k",
    "split",
    "rsched",
    "nnz",
    "comp",
    "val",
    "test",
    "val_drop",
    "test_drop",
    "group_time",
]


def write_rows(rows):
    new = not os.path.exists(CSVP)
    with open(CSVP, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerows(rows)


def summarize(rows):
    from collections import defaultdict

    d = defaultdict(list)
    for r in rows:
        d[(r["E"], r["name"])].append(r)
    for (E, n), rs in d.items():
        vd = np.array([x["val_drop"] for x in rs])
        td = np.array([x["test_drop"] for x in rs])
        ps = {
            s: (
                np.mean([x["val_drop"] for x in rs if x["seed"] == s]),
                np.mean([x["test_drop"] for x in rs if x["seed"] == s]),
            )
            for s in range(3)
        }
        log(
            f"E={E:4d} {n:28s} comp={rs[0]['comp']:6.2f} n={len(rs)} "
            f"val {vd.mean():+.3f} test {td.mean():+.3f} | "
            + " ".join(f"s{s}:{ps[s][0]:+.3f}/{ps[s][1]:+.3f}" for s in range(3))
            + f" | worst val {vd.max():+.3f} test {td.max():+.3f}"
        )


def V(name, **kw):
    c = dict(DEFAULT)
    c.update(kw)
    c["name"] = name
    return c


def expand(variants, reps):
    out = []
    for c in variants:
        for s in range(3):
            for rp in range(reps):
                d = dict(c)
                d["seed"] = s
                d["rep"] = rp
                out.append(d)
    return out


def plan_p1():
    vs = [
        V("prod"),
        V("lr3e-4", lr=3e-4),
        V("lr3e-3", lr=3e-3),
        V("a0", alpha=0.0),
        V("a0.5", alpha=0.5),
        V("l2_1e-5", l2=1e-5),
        V("l2_1e-4", l2=1e-4),
        V("adamw1e-4", wdec=1e-4),
        V("adamw1e-2", wdec=1e-2),
        V("step", sched="step"),
        V("al7-15-50", alloc=(0.07, 0.15, 0.50)),
        V("al7.5-12-40", alloc=(0.075, 0.12, 0.40)),
        V("al_global", alloc=("global", 21776 / TOTK)),
        V("al7.2-12-70", alloc=(0.072, 0.12, 0.70)),
    ]
    for k in (2, 3, 4, 6, 8):
        vs.append(V(f"it{k}", k=k))
    vs += [
        V("it4_restart", k=4, rsched="restart"),
        V("it4_end", k=4, split="end"),
        V("it8_restart", k=8, rsched="restart"),
    ]
    sub = [
        c
        for c in vs
        if c["name"] in ("prod", "a0.5", "lr3e-3", "al_global", "it4", "it8", "it4_restart", "al7-15-50")
    ]
    return [(30, expand(vs, 2)), (60, expand(vs, 2)), (120, expand(sub, 1))]


PLANS = {"p1": plan_p1}


def plan_p2():
    A = (0.07, 0.15, 0.50)
    vs = [
        V("prod"),
        V("A", alloc=A),
        V("A_lr3e-3", alloc=A, lr=3e-3),
        V("A_lr3e-3_l2", alloc=A, lr=3e-3, l2=1e-4),
        V("A_l2", alloc=A, l2=1e-4),
        V("A_it4r", alloc=A, k=4, rsched="restart"),
        V("A_it8r", alloc=A, k=8, rsched="restart"),
        V("A_it8r_lr3e-3", alloc=A, k=8, rsched="restart", lr=3e-3),
        V("A_it4r_lr3e-3", alloc=A, k=4, rsched="restart", lr=3e-3),
        V("B6.5-20-60_lr3e-3", alloc=(0.065, 0.20, 0.60), lr=3e-3),
        V("C6.8-15-100_lr3e-3", alloc=(0.068, 0.15, 1.0), lr=3e-3),
        V("B_it8r", alloc=(0.065, 0.20, 0.60), k=8, rsched="restart"),
        V("A_it8r_l2", alloc=A, k=8, rsched="restart", l2=1e-4),
        V("A_it6r", alloc=A, k=6, rsched="restart"),
        V("G_it8r", alloc=("global", 21776 / TOTK), k=8, rsched="restart"),
        V("A_it8r_end", alloc=A, k=8, rsched="restart", split="end"),
        V("A_lr3e-3_a0.5", alloc=A, lr=3e-3, alpha=0.5),
    ]
    ceil_recipes = [
        V("prod"),
        V("A_lr3e-3", alloc=A, lr=3e-3),
        V("A_it8r", alloc=A, k=8, rsched="restart"),
        V("A_it4r_lr3e-3", alloc=A, k=4, rsched="restart", lr=3e-3),
    ]

    def ceil(recs, reps):
        out = []
        for c in recs:
            for comp in (14, 16, 20, 24):
                d = dict(c)
                d["scale"] = comp / (12.22 if c["alloc"] == HAN else 12.40)
                d["name"] = c["name"] + f"@{comp}x"
                out.append(d)
        return expand(out, reps)

    sub = [
        c
        for c in vs
        if c["name"]
        in (
            "prod",
            "A",
            "A_lr3e-3",
            "A_it4r",
            "A_it8r",
            "A_it8r_lr3e-3",
            "A_it4r_lr3e-3",
            "B_it8r",
            "A_lr3e-3_l2",
        )
    ]
    return [
        (60, expand(vs, 3) + ceil(ceil_recipes, 2)),
        (30, expand(vs, 3) + ceil(ceil_recipes, 2)),
        (120, expand(sub, 3) + ceil(ceil_recipes[1:3], 2)),
    ]


PLANS["p2"] = plan_p2


def plan_p3():
    A = (0.07, 0.15, 0.50)
    C = (0.068, 0.15, 1.0)
    vs = []
    for an, al in (("A", A), ("C", C)):
        for lr in (1e-3, 3e-3):
            for l2 in (1e-4, 3e-4, 1e-3):
                vs.append(V(f"{an}_lr{lr:g}_l2{l2:g}", alloc=al, lr=lr, l2=l2))
    vs += [
        V("A_it8r_l23e-4", alloc=A, k=8, rsched="restart", l2=3e-4),
        V("A_it8r_l21e-3", alloc=A, k=8, rsched="restart", l2=1e-3),
    ]
    return [(30, expand(vs, 3)), (60, expand(vs, 3))]


PLANS["p3"] = plan_p3

groups = PLANS[args.plan]()
if args.cputest:
    groups = [(1, g[1][:4] + [c for c in g[1] if c["k"] > 1][:2]) for g in groups[:1]]
allrows = []
rate = None  # seconds per (replica*epoch)
for E, cfgs in groups:
    el = time.time() - T0
    if rate is not None:
        est = rate * E * len(cfgs)
        if el + est > args.budget:
            log(f"SKIP group E={E} R={len(cfgs)} est {est:.0f}s, elapsed {el:.0f}s")
            continue
    rows, dt = train_group(cfgs, E)
    rate = max(rate or 0, dt / (E * len(cfgs)))
    write_rows(rows)
    allrows += rows
    log(f"group E={E} R={len(cfgs)} done in {dt:.1f}s (elapsed {time.time() - T0:.0f}s)")
    summarize(rows)
log("TOTAL", time.time() - T0)
